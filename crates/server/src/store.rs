//! The one `Store` over SQLite and PostgreSQL. Each query is written once: the `on_db!`/`on_tx!` macros run the
//! same SQL text on whichever engine the database URL chose. Engine settings live here alone.

mod audit;
mod changes;
mod clients;
mod keys;
mod meta;
mod resources;
mod revoked;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

pub use audit::{AuditEntry, NewAudit};
pub use changes::Change;
pub use clients::{ClientRow, NewClient, SecretRow};
pub use keys::KeyRow;
pub use resources::ResourceRow;

/// Runs the same expression on whichever pool is in use.
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
/// Runs the same expression on whichever transaction is in use (`$c` is the connection).
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use {on_db, on_tx};

/// The connection pool of the engine chosen at start-up.
#[derive(Clone, Debug)]
pub enum Db {
    /// The embedded default.
    Sqlite(SqlitePool),
    /// For several nodes.
    Postgres(PgPool),
}

/// An open transaction on either engine.
pub enum Tx {
    /// SQLite.
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    /// PostgreSQL.
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    /// `sql` with `FOR UPDATE` appended on PostgreSQL when `lock` is set. On SQLite a transaction that has written
    /// holds the database's write lock, and every admin transaction writes its change-feed row first.
    pub(crate) fn lockable(&self, sql: String, lock: bool) -> String {
        match self {
            Tx::Postgres(_) if lock => format!("{sql} FOR UPDATE"),
            _ => sql,
        }
    }

    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// The outcomes callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row.
    #[error("not found")]
    NotFound,
    /// A uniqueness or reference rule would be broken; the text says which.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database is unreachable or the pool is exhausted.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// Anything else from the database.
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e)
            }
            sqlx::Error::Database(ref d) if d.is_unique_violation() => {
                StoreError::Conflict("already exists")
            }
            sqlx::Error::Database(ref d) if d.is_foreign_key_violation() => StoreError::Conflict(
                "refers to something that does not exist, or is still referred to",
            ),
            e => StoreError::Db(e),
        }
    }
}

/// Pool settings from the configuration.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most connections.
    pub max_connections: u32,
    /// How long a request waits for a connection before failing with 503.
    pub acquire_timeout: Duration,
}

/// The data layer: every query Keyward runs.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: Db,
}

impl Store {
    /// Connects to `url`: `postgres://…`/`postgresql://…`, `sqlite://PATH`, `sqlite:PATH`, or a plain file path.
    pub async fn connect(url: &str, pool: &PoolSettings) -> Result<Self, sqlx::Error> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(pool.max_connections)
                    .acquire_timeout(pool.acquire_timeout)
                    .connect_with(options)
                    .await?,
            )
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                // WAL lets readers run beside the writer; FULL makes an acknowledged write survive kill -9.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                // Rows cross from SQLite's thread in batches rather than one wake-up each: loading a million
                // clients at start is several times faster.
                .row_buffer_size(4_096)
                .foreign_keys(true);
            Db::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(pool.max_connections)
                    .acquire_timeout(pool.acquire_timeout)
                    .connect_with(options)
                    .await?,
            )
        };
        Ok(Self { db })
    }

    /// Applies the migrations of the engine in use. On PostgreSQL sqlx holds an advisory lock meanwhile, so
    /// nodes starting together migrate once.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.db {
            Db::Sqlite(p) => sqlx::migrate!("../../migrations/sqlite").run(p).await,
            Db::Postgres(p) => sqlx::migrate!("../../migrations/postgres").run(p).await,
        }
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match &self.db {
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// `/readyz`: whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(&self.db, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Which engine is in use, for logs.
    pub fn engine(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_db!(&self.db, |p| p.close().await)
    }
}

/// Splits a space-delimited list column.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}
