//! The embedded store: one SQLite file in WAL mode with full durability. One writer thread owns
//! the write connection and commits requests in groups (group commit): it takes every request
//! waiting, runs each inside its own savepoint, commits once, and only then answers them. A
//! request that fails rolls back to its savepoint and nothing of it is written; a failed commit
//! answers every request of the group with the error. Reads run on a small pool of read-only
//! connections, each in its own snapshot.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::sqlite_tx::SqliteTx;
use crate::tx::{Result, StoreError, Tx};

/// At most this many requests are committed together.
pub const GROUP_COMMIT_MAX: usize = 128;
/// Requests waiting for the writer beyond this are refused (the server answers 503).
pub const WRITE_QUEUE_MAX: usize = 4096;
/// Read connections.
pub const READERS_MAX: usize = 4;

const SCHEMA: &str = include_str!("../schema/sqlite.sql");

/// A request for the writer: run inside the group's transaction, then told how the commit went.
trait Job: Send {
    fn run(&mut self, tx: &mut dyn Tx) -> bool;
    fn finish(self: Box<Self>, committed: std::result::Result<(), String>);
}

struct TypedJob<T, F> {
    work: Option<F>,
    outcome: Option<Result<T>>,
    reply: Option<oneshot::Sender<Result<T>>>,
}

impl<T: Send, F: FnOnce(&mut dyn Tx) -> Result<T> + Send> Job for TypedJob<T, F> {
    fn run(&mut self, tx: &mut dyn Tx) -> bool {
        let work = self.work.take().expect("a job runs once");
        // A panic inside a request is a bug in that request: roll it back, keep the others.
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| work(tx))).unwrap_or_else(|_| {
                Err(StoreError::Corrupt("an invariant failed while writing".into()))
            });
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(mut self: Box<Self>, committed: std::result::Result<(), String>) {
        let outcome = self.outcome.take().unwrap_or(Err(StoreError::Closed));
        let answer = match (outcome, committed) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(message)) => Err(StoreError::Corrupt(format!("commit failed: {message}"))),
            (Err(error), _) => Err(error),
        };
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(answer);
        }
    }
}

pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::SyncSender<Box<dyn Job>>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

/// Statements kept prepared per connection (the store uses about 40 distinct ones).
const STATEMENT_CACHE: usize = 128;

fn tune(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Savepoint journals and sorts stay in memory; pages are cached (64 MiB) and mapped.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "mmap_size", 268_435_456)?;
    Ok(())
}

fn configure(conn: &Connection) -> Result<()> {
    tune(conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk before it is acknowledged, in WAL mode too.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints run on their own thread (`checkpointer`), not between two commits.
    conn.pragma_update(None, "wal_autocheckpoint", 1000)?;
    Ok(())
}

/// How often the checkpointer copies the write-ahead log into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Copies committed pages from the WAL into the database file without blocking the writer
/// (PASSIVE), so the log stays short and the writer never pauses for it.
fn checkpointer(path: PathBuf, writer_alive: std::sync::Weak<()>) {
    let Ok(conn) = Connection::open(&path) else { return };
    let _ = conn.busy_timeout(std::time::Duration::from_millis(100));
    while writer_alive.upgrade().is_some() {
        std::thread::sleep(CHECKPOINT_EVERY);
        let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and starts the writer.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let conn = Connection::open(path)?;
        configure(&conn)?;
        conn.execute_batch(SCHEMA)?;
        let (sender, receiver) = mpsc::sync_channel::<Box<dyn Job>>(WRITE_QUEUE_MAX);
        let alive = Arc::new(());
        let watched = Arc::downgrade(&alive);
        std::thread::Builder::new()
            .name("onestop-sqlite-writer".into())
            .spawn(move || {
                writer_loop(&conn, &receiver);
                drop(alive);
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer: {e}")))?;
        let checkpoint_path = path.to_owned();
        std::thread::Builder::new()
            .name("onestop-sqlite-checkpoint".into())
            .spawn(move || checkpointer(checkpoint_path, watched))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the checkpointer: {e}")))?;
        let readers = (0..READERS_MAX).map(|_| open_reader(path)).collect::<Result<Vec<_>>>()?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: sender,
            readers: Arc::new(Mutex::new(readers)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` in a write transaction (grouped with others) and answers after the commit.
    pub async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob { work: Some(work), outcome: None, reply: Some(reply) });
        self.writer.try_send(job).map_err(|error| match error {
            mpsc::TrySendError::Full(_) => StoreError::Busy,
            mpsc::TrySendError::Disconnected(_) => StoreError::Closed,
        })?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `work` on a read-only snapshot.
    pub async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let path = self.path.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let conn = readers.lock().map_err(|_| StoreError::Closed)?.pop();
            let conn = match conn {
                Some(conn) => conn,
                // More readers than the pool holds: open one more; it joins the pool after.
                None => open_reader(&path)?,
            };
            let outcome = read_snapshot(&conn, work);
            readers.lock().map_err(|_| StoreError::Closed)?.push(conn);
            outcome
        })
        .await;
        joined.map_err(|_| StoreError::Corrupt("a read panicked".into()))?
    }
}

fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let reader = Connection::open_with_flags(path, flags)?;
    tune(&reader)?;
    Ok(reader)
}

fn read_snapshot<T>(conn: &Connection, work: impl FnOnce(&mut dyn Tx) -> Result<T>) -> Result<T> {
    conn.execute_batch("BEGIN DEFERRED")?;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(&mut SqliteTx { conn })))
        .unwrap_or_else(|_| Err(StoreError::Corrupt("an invariant failed while reading".into())));
    conn.execute_batch("ROLLBACK")?;
    outcome
}

fn writer_loop(conn: &Connection, receiver: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_COMMIT_MAX {
            match receiver.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let committed = commit_group(conn, &mut group);
        for job in group {
            job.finish(committed.clone());
        }
    }
}

fn commit_group(conn: &Connection, group: &mut [Box<dyn Job>]) -> std::result::Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    for job in group.iter_mut() {
        let step = (|| -> rusqlite::Result<()> {
            conn.execute_batch("SAVEPOINT request")?;
            if job.run(&mut SqliteTx { conn }) {
                conn.execute_batch("RELEASE request")
            } else {
                conn.execute_batch("ROLLBACK TO request; RELEASE request")
            }
        })();
        if let Err(error) = step {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(error.to_string());
        }
    }
    conn.execute_batch("COMMIT").map_err(|error| {
        let _ = conn.execute_batch("ROLLBACK");
        error.to_string()
    })
}
