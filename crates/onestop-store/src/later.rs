//! Values the SQLite writer has handed to helper threads: a settlement's JSON (serialized,
//! compressed) and the response that carries it. Building them is a third of the writer's work
//! per settlement; on helpers it overlaps the writer's next requests of the same group, and the
//! writer waits for them only where it must: before it writes the rows, before it commits, and
//! before any primitive outside a settlement's own path (`sqlite_group::WriterTx`). Elsewhere
//! (readers, PostgreSQL) they are built inline and are ready at once.
//!
//! A build that fails (a panic on a helper: a bug) is found when its row is written, after its
//! request has released its savepoint: the group then rolls back and the writer runs it again
//! without that request, which alone answers the error (`sqlite::commit_group`). A request that
//! panics in its own work rolls back alone, to its savepoint.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use crate::tx::{Result, StoreError};

/// A value known now, or one a helper thread is still computing. Reading it waits for it; a
/// computation that failed reads as an error of the store, never as a value.
pub struct Later<T>(Arc<OnceLock<std::result::Result<T, String>>>);

impl<T> Later<T> {
    pub fn ready(value: T) -> Later<T> {
        let cell = OnceLock::new();
        let _ = cell.set(Ok(value));
        Later(Arc::new(cell))
    }

    fn pending() -> Later<T> {
        Later(Arc::new(OnceLock::new()))
    }

    /// Sets the value unless it is set already (a failed computation's guard sets it last).
    fn fulfil(&self, value: std::result::Result<T, String>) {
        let _ = self.0.set(value);
    }

    pub fn is_ready(&self) -> bool {
        self.0.get().is_some()
    }

    /// The value, once computed.
    pub fn get(&self) -> Result<&T> {
        self.0.wait().as_ref().map_err(|failure| StoreError::Corrupt(failure.clone()))
    }

    /// The value, once computed; moved out if this is its only handle.
    pub fn into_inner(self) -> Result<T>
    where
        T: Clone,
    {
        self.get()?;
        match Arc::try_unwrap(self.0) {
            Ok(cell) => cell.into_inner().expect("computed").map_err(StoreError::Corrupt),
            Err(shared) => Later(shared).get().cloned(),
        }
    }
}

impl<T> Clone for Later<T> {
    fn clone(&self) -> Later<T> {
        Later(Arc::clone(&self.0))
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Later<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(Ok(value)) => value.fmt(f),
            Some(Err(failure)) => write!(f, "<failed: {failure}>"),
            None => f.write_str("<being built>"),
        }
    }
}

/// Equal when both values are (waiting for them); two failures are never equal.
impl<T: PartialEq> PartialEq for Later<T> {
    fn eq(&self, other: &Later<T>) -> bool {
        matches!((self.get(), other.get()), (Ok(a), Ok(b)) if a == b)
    }
}

/// A settlement's wire JSON (`SettlementDto`, with its explanation), and the compressed form
/// the SQLite store keeps, when it was made beforehand.
#[derive(Clone, Debug)]
pub struct SettlementJson {
    pub text: String,
    pub(crate) packed: Option<Vec<u8>>,
}

impl SettlementJson {
    pub fn new(text: String) -> SettlementJson {
        SettlementJson { text, packed: None }
    }
}

/// The compressed form is derived from the text.
impl PartialEq for SettlementJson {
    fn eq(&self, other: &SettlementJson) -> bool {
        self.text == other.text
    }
}

/// A settlement a request has just computed, to serialize.
pub struct Explain {
    /// Serializes the settlement (`SettlementDto` JSON, some 10 KB with its explanation).
    pub settlement: Box<dyn FnOnce() -> String + Send>,
    /// The response record up to where the settlement goes: `{..., "settlement":`.
    pub head: String,
}

/// What an [`Explain`] becomes: the settlement's JSON for its row, and the response body.
pub struct Explained {
    pub result: Later<SettlementJson>,
    pub body: Later<String>,
}

impl Explain {
    /// Builds it here and now.
    pub fn now(self) -> Explained {
        let (result, body) = self.build(None);
        Explained { result: Later::ready(result), body: Later::ready(body) }
    }

    fn build(self, compress: Option<fn(&str) -> Vec<u8>>) -> (SettlementJson, String) {
        let text = (self.settlement)();
        let body = spliced(self.head, &text);
        let packed = compress.map(|compress| compress(&text));
        (SettlementJson { text, packed }, body)
    }
}

/// A response record: its `head` (`{..., "settlement":`) with the settlement's JSON spliced in
/// as it is, not parsed and serialized again.
pub(crate) fn spliced(head: String, settlement: &str) -> String {
    let mut body = head;
    body.reserve_exact(settlement.len() + 1);
    body.push_str(settlement);
    body.push('}');
    body
}

/// The pending values of one [`Explain`]: if its task is dropped without running (the helpers
/// are gone), they read as failed instead of leaving a reader waiting forever.
struct Slots {
    result: Later<SettlementJson>,
    body: Later<String>,
}

impl Drop for Slots {
    fn drop(&mut self) {
        self.body.fulfil(Err("the settlement's JSON was never built".into()));
        self.result.fulfil(Err("the settlement's JSON was never built".into()));
    }
}

type Task = Box<dyn FnOnce() + Send>;

/// Threads that build what the writer hands them, in the order handed.
pub(crate) struct Helpers {
    tasks: mpsc::Sender<Task>,
}

impl Helpers {
    /// Starts `count` helper threads; they stop when this is dropped.
    pub(crate) fn start(count: usize, name: &str) -> std::io::Result<Helpers> {
        assert!(count > 0, "at least one helper");
        let (tasks, queue) = mpsc::channel::<Task>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..count {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new().name(format!("{name}-{index}")).spawn(move || {
                loop {
                    // The lock is held only to take the next task, not while running it.
                    let next = queue.lock().map(|queue| queue.recv());
                    match next {
                        Ok(Ok(task)) => task(),
                        _ => return,
                    }
                }
            })?;
        }
        Ok(Helpers { tasks })
    }

    /// Hands `explain` to a helper; `compress` makes the stored form on the helper too.
    pub(crate) fn explain(&self, explain: Explain, compress: fn(&str) -> Vec<u8>) -> Explained {
        let slots = Slots { result: Later::pending(), body: Later::pending() };
        let explained = Explained { result: slots.result.clone(), body: slots.body.clone() };
        let task = move || {
            let built =
                std::panic::catch_unwind(AssertUnwindSafe(|| explain.build(Some(compress))));
            match built {
                Ok((result, body)) => {
                    slots.body.fulfil(Ok(body));
                    slots.result.fulfil(Ok(result));
                }
                Err(_) => {
                    let failure = "building a settlement's JSON failed".to_owned();
                    slots.body.fulfil(Err(failure.clone()));
                    slots.result.fulfil(Err(failure));
                }
            }
        };
        // Without helpers (they stopped), the task is dropped and its slots read as failed.
        let _ = self.tasks.send(Box::new(task));
        explained
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explain(text: &'static str) -> Explain {
        Explain {
            settlement: Box::new(move || text.to_owned()),
            head: "{\"a\":1,\"settlement\":".into(),
        }
    }

    #[test]
    fn built_now_and_by_a_helper_alike() {
        let helpers = Helpers::start(2, "test-helper").expect("threads");
        let now = explain("{\"x\":2}").now();
        let later = helpers.explain(explain("{\"x\":2}"), |text| text.as_bytes().to_vec());
        assert_eq!(now.body.get().expect("built"), "{\"a\":1,\"settlement\":{\"x\":2}}");
        assert_eq!(later.body.get().expect("built"), now.body.get().expect("built"));
        assert_eq!(later.result, now.result);
        assert_eq!(later.result.get().expect("built").packed.as_deref(), Some(&b"{\"x\":2}"[..]));
        assert_eq!(now.result.get().expect("built").packed, None);
        assert_eq!(later.body.into_inner().expect("built"), now.body.into_inner().expect("built"));
    }

    #[test]
    fn a_panic_or_a_stopped_helper_reads_as_an_error_not_a_wait() {
        let helpers = Helpers::start(1, "test-helper").expect("threads");
        let panicking = Explain { settlement: Box::new(|| panic!("a bug")), head: String::new() };
        let failed = helpers.explain(panicking, |_| Vec::new());
        assert!(matches!(failed.result.get(), Err(StoreError::Corrupt(_))));
        assert!(matches!(failed.body.get(), Err(StoreError::Corrupt(_))));
        assert_ne!(failed.result, failed.result.clone(), "a failure equals nothing");

        let (tasks, queue) = mpsc::channel::<Task>();
        drop(queue);
        let stopped = Helpers { tasks };
        let never = stopped.explain(explain("{}"), |_| Vec::new());
        assert!(never.result.is_ready());
        assert!(matches!(never.body.get(), Err(StoreError::Corrupt(_))));
    }
}
