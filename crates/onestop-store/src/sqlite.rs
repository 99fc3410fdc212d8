//! The embedded store: one SQLite file in WAL mode with full durability. One writer thread owns
//! the write connection and commits requests in groups (group commit): it takes every request
//! waiting, runs each inside its own savepoint, commits once, and only then answers them. A
//! request that fails rolls back to its savepoint and nothing of it is written; a failed commit
//! answers every request of the group with the error. A request whose settlement JSON fails to
//! build on a helper (`later`) is found only after its savepoint is released: the group rolls
//! back and runs again without it, so that request alone answers the error. Reads run on a small
//! pool of read-only connections, each in its own snapshot.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::later::Helpers;
use crate::sqlite_group::Group;
use crate::sqlite_tx::SqliteTx;
use crate::tx::{Result, StoreError, Tx};

/// At most this many requests are committed together.
pub const GROUP_COMMIT_MAX: usize = 128;
/// Requests waiting for the writer beyond this are refused (the server answers 503).
pub const WRITE_QUEUE_MAX: usize = 4096;
/// Read connections.
pub const READERS_MAX: usize = 4;
/// Threads that build settlements' JSON for the writer (`later`): a third of its work per
/// settlement; two, so that one slow build does not hold up the rest of the group.
const HELPERS: usize = 2;

pub(crate) const SCHEMA: &str = include_str!("../schema/sqlite.sql");
const MIGRATE_V1: &str = include_str!("../schema/sqlite_migrate_v1.sql");
const MIGRATE_V2: &str = include_str!("../schema/sqlite_migrate_v2.sql");
const MIGRATE_V3: &str = include_str!("../schema/sqlite_migrate_v3.sql");
const MIGRATE_V4: &str = include_str!("../schema/sqlite_migrate_v4.sql");

/// A request for the writer: run inside the group's transaction (again, if the group has to
/// run again without a request that failed after its savepoint), then told how the commit went.
trait Job: Send {
    fn run(&mut self, tx: &mut dyn Tx) -> bool;
    /// Leaves the request out of the group with this error.
    fn fail(&mut self, error: StoreError);
    fn finish(self: Box<Self>, committed: std::result::Result<(), String>);
}

struct TypedJob<T, F> {
    work: F,
    outcome: Option<Result<T>>,
    reply: Option<oneshot::Sender<Result<T>>>,
}

impl<T: Send, F: FnMut(&mut dyn Tx) -> Result<T> + Send> Job for TypedJob<T, F> {
    fn run(&mut self, tx: &mut dyn Tx) -> bool {
        // A panic inside a request is a bug in that request: roll it back, keep the others.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (self.work)(tx)))
            .unwrap_or_else(|_| {
                Err(StoreError::Corrupt("an invariant failed while writing".into()))
            });
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn fail(&mut self, error: StoreError) {
        self.outcome = Some(Err(error));
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

/// Statements kept prepared per connection: the store uses about 40 distinct ones, plus the
/// multi-row upsert of a settlement's counters, one per number of rows (a dozen, in practice).
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
    // Checkpoints run on their own thread (`checkpointer`), not between two commits; the
    // writer checkpoints itself only as a backstop, if the log ever reaches 128 MiB.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;
    Ok(())
}

/// How often the checkpointer copies the write-ahead log into the database: often, so that each
/// copy is small and its sync does not hold up the writer's syncs for long (measured: 20 ms and
/// 10 ms gave a longer tail of settle, 2 ms cost more CPU than it saved; docs/benchmarks.md).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(5);
/// Frames of log (64 MiB) beyond which the writer, when idle, lets it start over: each time
/// costs the writer a short pause (a sync of the last frames copied), so not too often.
const WAL_RESTART_FRAMES: i64 = 16_384;
/// Pages of write-ahead log at which the writer checkpoints itself (32,768 pages of 4 KiB).
const WAL_BACKSTOP_PAGES: i64 = 32_768;

/// Copies committed pages from the WAL into the database file without blocking the writer
/// (PASSIVE), so the log stays short and the writer never pauses for it.
///
/// A passive checkpoint never lets the log start over while commits keep coming: there is
/// always a frame it has not copied yet, and the log would grow until the writer's backstop
/// checkpoint copied it all in one long pause. So once the log is long, the checkpointer
/// catches up once more and asks the writer to copy the last few frames when it is idle; the
/// writer's next commit then writes the log from its start.
fn checkpointer(path: PathBuf, writer: std::sync::Weak<WriterShared>) {
    let Ok(conn) = Connection::open(&path) else { return };
    let _ = conn.busy_timeout(std::time::Duration::from_millis(100));
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        let Some(shared) = writer.upgrade() else { return };
        if checkpoint_passive(&conn).is_some_and(|frames| frames >= WAL_RESTART_FRAMES) {
            let _ = checkpoint_passive(&conn);
            shared.restart_wanted.store(true, Ordering::Relaxed);
        }
    }
}

/// A passive checkpoint; the length of the log in frames, if it ran.
fn checkpoint_passive(conn: &Connection) -> Option<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(1)).ok()
}

/// What the writer shares with the checkpointer; it lives as long as the writer.
#[derive(Default)]
struct WriterShared {
    /// The log is long: copy its last frames when idle, so that it starts over.
    restart_wanted: AtomicBool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and starts the writer.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let conn = Connection::open(path)?;
        configure(&conn)?;
        apply_schema(&conn)?;
        let (sender, receiver) = mpsc::sync_channel::<Box<dyn Job>>(WRITE_QUEUE_MAX);
        let alive = Arc::new(WriterShared::default());
        let watched = Arc::downgrade(&alive);
        let helpers = Helpers::start(HELPERS, "sqlite-helper")
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer's helpers: {e}")))?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                writer_loop(&conn, &helpers, &receiver, &alive);
                drop(alive);
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer: {e}")))?;
        let checkpoint_path = path.to_owned();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
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
    /// `work` may run more than once (each time in a new transaction; only the last commits),
    /// so it has no effect outside the transaction.
    pub async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob { work, outcome: None, reply: Some(reply) });
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

/// Migrates an older database, then creates what is missing of the schema: all in one
/// transaction, so that a failure leaves the file as it was.
fn apply_schema(conn: &Connection) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let applied = (|| -> rusqlite::Result<()> {
        // Version 1 is the only one with a table named `ledger` (a view since version 2).
        let v1 = "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = \
            'ledger')";
        if conn.query_row(v1, [], |row| row.get::<_, bool>(0))? {
            conn.execute_batch(MIGRATE_V1)?;
        }
        conn.execute_batch(SCHEMA)?;
        // Version 2 is the only one whose visitor settlements have no `scheme`.
        let v2 = "SELECT NOT EXISTS (SELECT 1 FROM pragma_table_info('visitor_settlements') \
            WHERE name = 'scheme')";
        if conn.query_row(v2, [], |row| row.get::<_, bool>(0))? {
            conn.execute_batch(MIGRATE_V2)?;
        }
        // Versions up to 3 are the only ones whose visits have no `disease`.
        let v3 = "SELECT NOT EXISTS (SELECT 1 FROM pragma_table_info('visits') WHERE name = \
            'disease')";
        if conn.query_row(v3, [], |row| row.get::<_, bool>(0))? {
            conn.execute_batch(MIGRATE_V3)?;
        }
        // Versions up to 4 are the only ones whose audit rows have no `channel`.
        let v4 = "SELECT NOT EXISTS (SELECT 1 FROM pragma_table_info('audit_log') WHERE name = \
            'channel')";
        if conn.query_row(v4, [], |row| row.get::<_, bool>(0))? {
            conn.execute_batch(MIGRATE_V4)?;
        }
        // Version 6 added a table (`account_credits`), which the schema creates where missing.
        conn.execute_batch("UPDATE schema_version SET version = 6 WHERE version < 6")
    })();
    match applied {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(error.into())
        }
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

fn writer_loop(
    conn: &Connection,
    helpers: &Helpers,
    receiver: &mpsc::Receiver<Box<dyn Job>>,
    shared: &WriterShared,
) {
    let mut next = receiver.recv().ok();
    while let Some(first) = next {
        let mut group = vec![first];
        while group.len() < GROUP_COMMIT_MAX {
            match receiver.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let committed = commit_group(conn, helpers, &mut group);
        for job in group {
            job.finish(committed.clone());
        }
        next = match receiver.try_recv() {
            Ok(job) => Some(job),
            Err(mpsc::TryRecvError::Disconnected) => None,
            Err(mpsc::TryRecvError::Empty) => {
                // Idle: the moment to let the log start over, if the checkpointer asked.
                if shared.restart_wanted.swap(false, Ordering::Relaxed) {
                    let _ = checkpoint_passive(conn);
                }
                receiver.recv().ok()
            }
        };
    }
}

/// Runs one of the writer's fixed statements (prepared once, kept in the cache).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs a group of requests in one transaction, each in its own savepoint, and commits once.
/// Settlement rows whose JSON the helpers build are written after the last request
/// (`sqlite_group`). A request whose JSON failed to build is left out and the others run again
/// in a new transaction: at most once per request of the group.
fn commit_group(
    conn: &Connection,
    helpers: &Helpers,
    jobs: &mut [Box<dyn Job>],
) -> std::result::Result<(), String> {
    let mut left_out = vec![false; jobs.len()];
    for _ in 0..=jobs.len() {
        match attempt_group(conn, helpers, jobs, &left_out) {
            Attempt::Committed => return Ok(()),
            Attempt::Failed(error) => return Err(error),
            Attempt::Poisoned { request, error } => {
                assert!(!left_out[request], "a request left out does not run again");
                tracing::error!(%error, request, "a settlement's JSON failed to build: the group \
                    runs again without its request");
                left_out[request] = true;
                jobs[request].fail(error);
            }
        }
    }
    unreachable!("each attempt but the last leaves one more request out")
}

/// How one run of a group ended (rolled back unless committed).
enum Attempt {
    Committed,
    Failed(String),
    /// The JSON of request number `request` failed to build after its savepoint was released.
    Poisoned {
        request: usize,
        error: StoreError,
    },
}

fn attempt_group(
    conn: &Connection,
    helpers: &Helpers,
    jobs: &mut [Box<dyn Job>],
    left_out: &[bool],
) -> Attempt {
    if let Err(error) = run(conn, "BEGIN IMMEDIATE") {
        return Attempt::Failed(error.to_string());
    }
    let mut group = Group::new(conn, helpers);
    let rolled_back = |group: &Group<'_>, error: String| {
        let _ = conn.execute_batch("ROLLBACK");
        match group.poisoned() {
            Some((request, error)) => Attempt::Poisoned { request, error },
            None => Attempt::Failed(error),
        }
    };
    let runs = jobs.iter_mut().enumerate().filter(|(index, _)| !left_out[*index]);
    for (index, job) in runs {
        let step = (|| -> rusqlite::Result<()> {
            run(conn, "SAVEPOINT request")?;
            if job.run(&mut group.tx(index)) {
                run(conn, "RELEASE request")
            } else {
                run(conn, "ROLLBACK TO request")?;
                group.rolled_back(index);
                run(conn, "RELEASE request")
            }
        })();
        if let Err(error) = step {
            return rolled_back(&group, error.to_string());
        }
        if group.poisoned().is_some() {
            // Found by a read of this request: no use running the rest of this attempt.
            return rolled_back(&group, String::new());
        }
    }
    if let Err(error) = group.finish() {
        return rolled_back(&group, error.to_string());
    }
    match run(conn, "COMMIT") {
        Ok(()) => Attempt::Committed,
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK");
            Attempt::Failed(error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::sqlite_group::tests::{book, key, stored};

    /// A job for `commit_group`, its answer, and how many times it ran.
    type Booked = (Box<dyn Job>, oneshot::Receiver<Result<()>>, Arc<AtomicUsize>);

    fn job(work: impl Fn(&mut dyn Tx) -> Result<()> + Send + 'static) -> Booked {
        let (reply, answer) = oneshot::channel();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let work = move |tx: &mut dyn Tx| {
            counted.fetch_add(1, Ordering::Relaxed);
            work(tx)
        };
        (Box::new(TypedJob { work, outcome: None, reply: Some(reply) }), answer, runs)
    }

    /// Runs the jobs as one group; their answers and how many times each ran.
    fn commit(conn: &Connection, booked: Vec<Booked>) -> Vec<(Result<()>, usize)> {
        let helpers = Helpers::start(2, "test-helper").expect("helpers");
        let (mut jobs, rest): (Vec<_>, Vec<_>) =
            booked.into_iter().map(|(job, answer, runs)| (job, (answer, runs))).unzip();
        let committed = commit_group(conn, &helpers, &mut jobs);
        assert_eq!(committed, Ok(()), "the group commits");
        for job in jobs {
            job.finish(committed.clone());
        }
        let answer = |(mut answer, runs): (oneshot::Receiver<_>, Arc<AtomicUsize>)| {
            (answer.try_recv().expect("answered"), runs.load(Ordering::Relaxed))
        };
        rest.into_iter().map(answer).collect()
    }

    fn database() -> Connection {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(SCHEMA).expect("schema");
        conn
    }

    fn failed_to_build(answer: &Result<()>) -> bool {
        let built = "explanation could not be built";
        matches!(answer, Err(StoreError::Corrupt(message)) if message.contains(built))
    }

    #[test]
    fn a_settlement_whose_json_fails_to_build_is_left_out_and_the_rest_of_its_group_commits() {
        let conn = database();
        let answers = commit(
            &conn,
            vec![
                job(|tx| book(tx, "S-110000-P1-1", "{\"n\":1}")),
                job(|tx| book(tx, "S-110000-P1-2", "")),
                job(|tx| book(tx, "S-110000-P1-3", "{\"n\":3}")),
            ],
        );
        assert!(answers[0].0.is_ok() && answers[2].0.is_ok(), "{answers:?}");
        assert!(failed_to_build(&answers[1].0), "{answers:?}");
        // The others ran again, in the transaction that committed; the failed one did not.
        assert_eq!(answers.iter().map(|a| a.1).collect::<Vec<_>>(), [2, 1, 2]);
        assert_eq!(stored(&conn), ["S-110000-P1-1", "S-110000-P1-3"]);
        let third = SqliteTx { conn: &conn }.settlement(&key(), "S-110000-P1-3").expect("read");
        assert_eq!(third.expect("stored").result.get().expect("json").text, "{\"n\":3}");
    }

    #[test]
    fn a_failed_json_found_by_a_later_read_of_the_group_fails_only_its_own_request() {
        let conn = database();
        let answers = commit(
            &conn,
            vec![
                job(|tx| book(tx, "S-110000-P1-1", "")),
                // Reads the settlements: the waiting rows are written first, and one fails.
                job(|tx| tx.settlement(&key(), "S-110000-P1-1").map(|_| ())),
                job(|tx| book(tx, "S-110000-P1-3", "{\"n\":3}")),
                job(|tx| book(tx, "S-110000-P1-4", "")),
            ],
        );
        assert!(failed_to_build(&answers[0].0) && failed_to_build(&answers[3].0), "{answers:?}");
        assert!(answers[1].0.is_ok() && answers[2].0.is_ok(), "{answers:?}");
        assert_eq!(stored(&conn), ["S-110000-P1-3"]);
    }

    #[test]
    fn a_group_of_failed_builds_only_commits_nothing() {
        let conn = database();
        let answers = commit(&conn, vec![job(|tx| book(tx, "S-110000-P1-1", ""))]);
        assert!(failed_to_build(&answers[0].0), "{answers:?}");
        assert!(stored(&conn).is_empty());
    }
}
