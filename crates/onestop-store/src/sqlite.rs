//! The embedded store: one SQLite file in WAL mode with full durability. One writer thread owns
//! the write connection and commits requests in groups (group commit): it takes every request
//! waiting, runs each inside its own savepoint, commits once, and only then answers them. A
//! request that fails rolls back to its savepoint and nothing of it is written; a failed commit
//! answers every request of the group with the error. Reads run on a small pool of read-only
//! connections, each in its own snapshot.

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
        conn.execute_batch(SCHEMA)
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
/// (`sqlite_group`).
fn commit_group(
    conn: &Connection,
    helpers: &Helpers,
    jobs: &mut [Box<dyn Job>],
) -> std::result::Result<(), String> {
    run(conn, "BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    let mut group = Group::new(conn, helpers);
    for (index, job) in jobs.iter_mut().enumerate() {
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
            let _ = conn.execute_batch("ROLLBACK");
            return Err(error.to_string());
        }
    }
    if let Err(error) = group.finish() {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(error.to_string());
    }
    run(conn, "COMMIT").map_err(|error| {
        let _ = conn.execute_batch("ROLLBACK");
        error.to_string()
    })
}
