//! The PostgreSQL store: a pool of connections (r2d2 over the synchronous `postgres` client),
//! each request in its own transaction on a blocking thread. A write runs in one READ COMMITTED
//! transaction and answers after its COMMIT; an error or a panic inside it rolls the whole
//! transaction back, so nothing of it is written. Two settlements of one person serialize on
//! the person's row lock (`SELECT ... FOR UPDATE`, see `postgres_tx`). A read runs in a
//! REPEATABLE READ, READ ONLY transaction: one consistent snapshot.
//!
//! The schema (`schema/postgres.sql`) is applied at open; where the Citus extension is installed
//! the tables are also distributed once (`schema/citus.sql`). Plain PostgreSQL needs nothing more.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use ::postgres::config::SslMode;
use ::postgres::{IsolationLevel, NoTls, Statement, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::postgres_tls;
use crate::postgres_tx::PgTx;
use crate::tx::{Result, StoreError, Tx};

/// Connections the pool opens at most: requests beyond it wait for one.
pub const POOL_CONNECTIONS_MAX: u32 = 16;
/// Connections kept open while idle.
pub const POOL_IDLE_MIN: u32 = 2;
/// How long a request waits for a connection before it fails.
pub const POOL_WAIT_MAX: Duration = Duration::from_secs(10);

const SCHEMA: &str = include_str!("../schema/postgres.sql");
const MIGRATE_V1: &str = include_str!("../schema/postgres_migrate_v1.sql");
const MIGRATE_V2: &str = include_str!("../schema/postgres_migrate_v2.sql");
const MIGRATE_V3: &str = include_str!("../schema/postgres_migrate_v3.sql");
const MIGRATE_V4: &str = include_str!("../schema/postgres_migrate_v4.sql");
const CITUS: &str = include_str!("../schema/citus.sql");
/// Serializes the schema setup of stores opening at once (`pg_advisory_xact_lock`); an
/// arbitrary key, the ASCII of "onestop".
const SCHEMA_LOCK: &str = "SELECT pg_advisory_xact_lock(31365104422645616)";

type Pool = r2d2::Pool<Manager>;

/// A pooled connection and the statements prepared on it. Preparing costs a round trip, so
/// each SQL text is prepared once per connection and reused by every later transaction.
pub struct Connection {
    pub client: ::postgres::Client,
    pub statements: HashMap<String, Statement>,
}

/// Opens pooled connections.
pub struct Manager {
    config: ::postgres::Config,
    /// TLS for every connection (`sslmode=require`; `postgres_tls`), else in the clear.
    tls: Option<MakeRustlsConnect>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = ::postgres::Error;

    fn connect(&self) -> std::result::Result<Connection, ::postgres::Error> {
        let client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone())?,
            None => self.config.connect(NoTls)?,
        };
        Ok(Connection { client, statements: HashMap::new() })
    }

    fn is_valid(&self, conn: &mut Connection) -> std::result::Result<(), ::postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.client.is_closed()
    }
}

pub struct PgStore {
    /// Always set; taken only when the store is dropped.
    pool: Option<Pool>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/database?...`) and applies the schema.
    /// `sslmode=require` (with `sslrootcert=PATH`) makes every connection TLS, the server
    /// verified, and `sslcert`/`sslkey` present a client certificate (`postgres_tls`).
    pub fn open(url: &str) -> Result<PgStore> {
        let options = postgres_tls::options(url)?;
        let mut config: ::postgres::Config = options.url.parse()?;
        let tls = match config.get_ssl_mode() {
            SslMode::Require => Some(postgres_tls::connector(&options)?),
            _ => {
                postgres_tls::identity_needs_tls(&options)?;
                None
            }
        };
        if config.get_application_name().is_none() {
            config.application_name("onestop");
        }
        let manager = Manager { config, tls };
        // The first connection is made here, not by the pool, so that a wrong address,
        // password or certificate fails the open at once with its own error. The synchronous
        // client drives its own runtime, which cannot run on a thread that drives async tasks;
        // `open` may be called from one, so the setup runs on its own thread.
        let setup = || {
            let mut first = r2d2::ManageConnection::connect(&manager).map_err(|error| {
                StoreError::Config(format!("cannot connect to PostgreSQL: {}", causes(&error)))
            })?;
            apply_schema(&mut first.client)
        };
        std::thread::scope(|scope| scope.spawn(setup).join())
            .map_err(|_| StoreError::Corrupt("the schema setup panicked".into()))??;
        let pool = r2d2::Pool::builder()
            .max_size(POOL_CONNECTIONS_MAX)
            .min_idle(Some(POOL_IDLE_MIN))
            .connection_timeout(POOL_WAIT_MAX)
            .build_unchecked(manager);
        Ok(PgStore { pool: Some(pool) })
    }

    fn pool(&self) -> Result<Pool> {
        self.pool.clone().ok_or(StoreError::Closed)
    }

    /// Runs `work` in one READ COMMITTED transaction and answers after the commit.
    pub async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        self.on_connection("a write panicked", move |client, statements| {
            let mut transaction = client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start()?;
            match run(&mut transaction, statements, work, "writing") {
                Ok(value) => {
                    transaction.commit()?;
                    Ok(value)
                }
                Err(error) => {
                    // The error to report is the one that aborted the work.
                    let _ = transaction.rollback();
                    Err(error)
                }
            }
        })
        .await
    }

    /// Runs `work` on a consistent read-only snapshot.
    pub async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T> + Send + 'static,
    {
        self.on_connection("a read panicked", move |client, statements| {
            let mut transaction = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let outcome = run(&mut transaction, statements, work, "reading");
            let _ = transaction.rollback();
            outcome
        })
        .await
    }

    /// Runs `body` on a pooled connection, on a blocking thread (the client blocks).
    async fn on_connection<T, B>(&self, panicked: &'static str, body: B) -> Result<T>
    where
        T: Send + 'static,
        B: FnOnce(&mut ::postgres::Client, &mut HashMap<String, Statement>) -> Result<T>
            + Send
            + 'static,
    {
        let pool = self.pool()?;
        let joined = tokio::task::spawn_blocking(move || {
            let mut connection = pool.get()?;
            let Connection { client, statements } = &mut *connection;
            body(client, statements)
        })
        .await;
        joined.map_err(|_| StoreError::Corrupt(panicked.into()))?
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Closing a connection also runs the client's runtime: not on an async worker thread.
        if let Some(pool) = self.pool.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::Builder::new()
                .name("onestop-postgres-close".into())
                .spawn(move || drop(pool));
        }
    }
}

/// Runs `work` over the open transaction; a panic inside it is an error like any other.
fn run<T>(
    transaction: &mut Transaction<'_>,
    statements: &mut HashMap<String, Statement>,
    work: impl FnOnce(&mut dyn Tx) -> Result<T>,
    doing: &str,
) -> Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(|| work(&mut PgTx { tx: transaction, statements })))
        .unwrap_or_else(|_| Err(StoreError::Corrupt(format!("an invariant failed while {doing}"))))
}

/// An error with its causes, outermost first: the client's own message of a failed TLS
/// handshake does not say why it failed (an unknown CA, a name that does not match ...).
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text = format!("{text}: {inner}");
        cause = inner.source();
    }
    text
}

/// Migrates an older database and creates what is missing of the schema (one transaction),
/// then distributes it where Citus is installed.
fn apply_schema(client: &mut ::postgres::Client) -> Result<()> {
    let mut transaction = client.transaction()?;
    transaction.batch_execute(SCHEMA_LOCK)?;
    // Version 1 is the only one with a table named `ledger` (a view since version 2).
    let v1 = "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = \
        current_schema() AND table_name = 'ledger' AND table_type = 'BASE TABLE')";
    if transaction.query_one(v1, &[])?.try_get::<_, bool>(0)? {
        transaction.batch_execute(MIGRATE_V1)?;
    }
    transaction.batch_execute(SCHEMA)?;
    transaction.batch_execute(MIGRATE_V2)?;
    transaction.batch_execute(MIGRATE_V3)?;
    transaction.batch_execute(MIGRATE_V4)?;
    // Version 6 added a table (`account_credits`), which the schema creates where missing.
    transaction.batch_execute("UPDATE schema_version SET version = 6 WHERE version < 6")?;
    transaction.commit()?;

    let mut transaction = client.transaction()?;
    transaction.batch_execute(SCHEMA_LOCK)?;
    let citus = "SELECT 1 FROM pg_extension WHERE extname = 'citus'";
    if transaction.query_opt(citus, &[])?.is_some() {
        // Distributing is all or nothing (one transaction), so one table tells.
        let distributed = "SELECT EXISTS (SELECT 1 FROM pg_dist_partition \
            WHERE logicalrelid = 'persons'::regclass)";
        if !transaction.query_one(distributed, &[])?.try_get::<_, bool>(0)? {
            transaction.batch_execute(CITUS)?;
        }
        // A table added since the deployment was distributed (version 6).
        let credits = "SELECT EXISTS (SELECT 1 FROM pg_dist_partition \
            WHERE logicalrelid = 'account_credits'::regclass)";
        if !transaction.query_one(credits, &[])?.try_get::<_, bool>(0)? {
            transaction.batch_execute(
                "SELECT create_distributed_table('account_credits', 'person_id', \
                 colocate_with => 'persons')",
            )?;
        }
    }
    transaction.commit()?;
    Ok(())
}
