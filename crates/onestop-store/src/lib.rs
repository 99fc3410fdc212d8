//! onestop-store: the durable settlement store.
//!
//! Operations (`ops`, `visits`, `people`, `reports`) are written once over the storage
//! primitives of [`tx::Tx`]; SQLite (`sqlite`, the embedded default) and PostgreSQL
//! (`postgres`) implement them. Every write runs in one transaction: the settlement, its ledger
//! postings, the accumulators and the idempotency record commit together or not at all.

pub mod accounts;
pub mod audit;
pub mod clearing;
pub mod filings;
pub mod import;
pub mod later;
pub mod maintenance;
pub mod model;
mod multi_row;
pub mod ops;
pub mod people;
pub mod postgres;
mod postgres_tls;
pub use postgres_tls::{certificate_chain, client_config, root_certificates};
mod postgres_tx;
pub mod reports;
pub mod sqlite;
mod sqlite_group;
mod sqlite_tx;
pub mod tx;
pub mod visits;

use std::path::PathBuf;

pub use model::{Institution, PersonKey, Role};
pub use ops::{Answer, Env, Idempotency};
pub use tx::{StoreError, Tx};

/// A store of either kind, and its last failure (for health checks).
pub struct Store {
    backend: Backend,
    failure: std::sync::Mutex<Option<(std::time::Instant, String)>>,
}

enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens `sqlite:PATH` (or a bare path) or `postgres://...`.
    pub fn open(url: &str) -> tx::Result<Store> {
        let backend = Store::open_backend(url)?;
        Ok(Store { backend, failure: std::sync::Mutex::default() })
    }

    fn open_backend(url: &str) -> tx::Result<Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres(postgres::PgStore::open(url)?));
        }
        // A bare path or another scheme is refused rather than taken as a new SQLite file.
        let path =
            url.strip_prefix("sqlite:").filter(|path| !path.is_empty()).ok_or_else(|| {
                StoreError::Config(format!(
                    "`{url}` is not a database: write sqlite:PATH (the embedded default) or \
                 postgres://user@host/db"
                ))
            })?;
        Ok(Backend::Sqlite(sqlite::SqliteStore::open(&PathBuf::from(path))?))
    }

    /// Notes a failure of the store (I/O, a full disk, a lost connection), for
    /// [`Store::recent_failure`]. A store at its limit of waiting requests, or shutting down,
    /// has not failed.
    pub fn note_failure(&self, error: &StoreError) {
        if matches!(error, StoreError::Busy | StoreError::Closed) {
            return;
        }
        let mut slot = self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some((std::time::Instant::now(), error.to_string()));
    }

    /// The store's last failure if it came within `within`, and how long ago it was.
    pub fn recent_failure(
        &self,
        within: std::time::Duration,
    ) -> Option<(std::time::Duration, String)> {
        let slot = self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (at, message) = slot.as_ref()?;
        let ago = at.elapsed();
        (ago < within).then(|| (ago, message.clone()))
    }

    fn noted<T>(&self, done: tx::Result<T>) -> tx::Result<T> {
        if let Err(error) = &done {
            self.note_failure(error);
        }
        done
    }

    /// Runs `work` in one write transaction; answers after it is durable. `work` may run more
    /// than once (SQLite reruns a group without a request whose JSON failed to build; only the
    /// last run commits), so it must have no effect outside the transaction.
    pub async fn write<T, F>(&self, work: F) -> tx::Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Tx) -> tx::Result<T> + Send + 'static,
    {
        let done = match &self.backend {
            Backend::Sqlite(store) => store.write(work).await,
            Backend::Postgres(store) => store.write(work).await,
        };
        self.noted(done)
    }

    /// Runs `work` on a consistent read-only snapshot.
    pub async fn read<T, F>(&self, work: F) -> tx::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> tx::Result<T> + Send + 'static,
    {
        let done = match &self.backend {
            Backend::Sqlite(store) => store.read(work).await,
            Backend::Postgres(store) => store.read(work).await,
        };
        self.noted(done)
    }

    /// What kind of store this is, for logs and benchmarks.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// The store's own rate of durable single-row commits, with the same durability settings the
/// store uses: one row per transaction, one after another, for `duration`. The baseline that
/// settlement throughput is compared with (docs/benchmarks.md).
pub fn raw_commit_rate(url: &str, duration: std::time::Duration) -> tx::Result<f64> {
    let started = std::time::Instant::now();
    let mut commits = 0u64;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut client = ::postgres::Client::connect(url, ::postgres::NoTls)?;
        client.batch_execute("CREATE TEMP TABLE raw_commits (n BIGINT NOT NULL)")?;
        while started.elapsed() < duration {
            client.execute("INSERT INTO raw_commits (n) VALUES ($1)", &[&(commits as i64)])?;
            commits += 1;
        }
    } else {
        let path = url.strip_prefix("sqlite:").unwrap_or(url);
        let path = PathBuf::from(format!("{path}.raw-commits"));
        let conn = rusqlite::Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch("CREATE TABLE IF NOT EXISTS raw_commits (n INTEGER NOT NULL)")?;
        let mut insert = conn.prepare("INSERT INTO raw_commits (n) VALUES (?1)")?;
        while started.elapsed() < duration {
            insert.execute([commits as i64])?;
            commits += 1;
        }
        drop(insert);
        drop(conn);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    #[allow(clippy::float_arithmetic)]
    let rate = commits as f64 / started.elapsed().as_secs_f64();
    Ok(rate)
}
