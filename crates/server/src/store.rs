//! The one `Store` over SQLite and PostgreSQL. Each query is written once: the `on_db!`/`on_tx!` macros run the
//! same SQL text on whichever engine the database URL chose. Engine settings live here alone.

mod accounts;
mod audit;
mod changes;
mod clients;
mod factors;
mod grants;
mod keys;
mod leases;
mod limits;
mod mail;
mod meta;
mod resources;
mod revoked;
mod secrets;
mod sessions;
mod spent;
mod usage;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

pub use accounts::AccountRow;
pub use audit::{AuditEntry, NewAudit};
pub use changes::Change;
pub use clients::{ClientRow, NewClient};
pub use factors::FactorRow;
pub use grants::{Advance, CodeRow, ConsentRow, GrantFilter, GrantRow, RefreshRow, same_instance};
pub use keys::KeyRow;
pub use mail::{MAIL_KEPT_SECONDS, MailRow};
pub use resources::ResourceRow;
pub use secrets::SecretRow;
pub use sessions::{SessionOrigin, SessionRow};
pub use usage::UsageRow;

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
    /// `sql` with `FOR UPDATE` appended on PostgreSQL when `lock` is set. On SQLite every transaction that may
    /// write holds the database's write lock from its start (`Store::begin`), so nothing can change under it.
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
    /// The request's text cannot be stored (PostgreSQL refuses NUL in `TEXT`): the caller's mistake, which the
    /// edges refuse first with the field's name; this is the backstop for any path they miss.
    #[error("text the database cannot store: {0}")]
    Unstorable(sqlx::Error),
    /// Anything else from the database.
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

/// PostgreSQL error codes that mean "the server cannot take this now", not "this request is wrong": class 08
/// (connection exception), 57P01–57P03 (shutting down, crash recovery, cannot connect now) and 53300 (too many
/// connections). They become 503, like a pool timeout.
/// The same holds for a transaction that lost a race and should simply be tried again: PostgreSQL's 40001
/// (serialization failure) and 40P01 (deadlock detected), and SQLite's busy and locked codes (5, 6, and the
/// extended 261, 517, 773), which a writer only meets once it waited the whole busy timeout for the write lock.
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01"
                | "57P02"
                | "57P03"
                | "53300"
                | "40001"
                | "40P01"
                | "5"
                | "6"
                | "261"
                | "517"
                | "773"
        )
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(ref d) if d.code().is_some_and(|c| is_unavailable_code(&c)) => {
                StoreError::Unavailable(e)
            }
            sqlx::Error::Database(ref d) if d.code().is_some_and(|c| is_unstorable_code(&c)) => {
                StoreError::Unstorable(e)
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

/// PostgreSQL error codes of text it cannot hold: 22021 (`character_not_in_repertoire`: a NUL byte in `TEXT`) and
/// 22P05 (`untranslatable_character`: `\u0000` in JSON). Only a request can bring such text, so they become 400.
fn is_unstorable_code(code: &str) -> bool {
    matches!(code, "22021" | "22P05")
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
    /// Two connections of their own for the node's upkeep (the change feed, readiness), so that requests holding
    /// every connection of `db` can neither hold back changes nor make a busy node look unreachable.
    control: Db,
    /// PostgreSQL: how to open the change listener's own connection.
    listen: Option<(PgConnectOptions, Duration)>,
    /// SQLite: the single-use ids' writes, one at a time. SQLite has one writer; connections that find it busy
    /// sleep in its retry loop (up to 100 ms a try), so under a stream of `private_key_jwt` or DPoP tokens queueing
    /// them here keeps the wait to the writes ahead instead.
    pub(crate) spend_queue: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Connections of the control pool: one for the change feed, one for readiness checks.
const CONTROL_CONNECTIONS: u32 = 2;

/// The tables whose rows expire, which the purge deletes in small batches. A new short-lived table is a variant
/// here and a branch of `Store::purge_expired`; the purge and its metrics follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiring {
    /// Denylist entries whose tokens have expired.
    RevokedTokens,
    /// Change-feed entries older than `CHANGES_KEPT_SECONDS`.
    Changes,
    /// Authorization codes expired more than `CODES_KEPT_SECONDS` ago.
    AuthCodes,
    /// Grants (refresh-token families) past their absolute lifetime, with their refresh tokens.
    Grants,
    /// The records of a family's access tokens, once those tokens have expired.
    GrantTokens,
    /// Expired login sessions.
    Sessions,
    /// Hourly token counts older than `USAGE_KEPT_SECONDS`.
    Usage,
    /// Shared rate-limit and quota state that no longer limits anything.
    LimitState,
    /// Audit entries older than the configured retention (`audit_retention`).
    Audit,
    /// Single-use ids (client assertions' `jti`) that could no longer be accepted anyway.
    SpentIds,
    /// Outbox messages sent or given up more than `MAIL_KEPT_SECONDS` ago.
    Mail,
    /// Expired password reset links.
    Resets,
}

/// Used and expired codes are kept ten minutes, so a code replayed late still revokes what it issued.
pub const CODES_KEPT_SECONDS: i64 = 600;

/// Hourly token counts are kept 31 days (the console charts up to 30).
pub const USAGE_KEPT_SECONDS: i64 = 31 * 86_400;

/// Feed entries are kept a day (a CLI or a node reading the feed late still finds them).
pub const CHANGES_KEPT_SECONDS: i64 = 86_400;

impl Expiring {
    /// Every kind, in the order the purge visits them.
    pub const ALL: [Expiring; 12] = [
        Expiring::RevokedTokens,
        Expiring::Changes,
        Expiring::AuthCodes,
        Expiring::Grants,
        Expiring::GrantTokens,
        Expiring::Sessions,
        Expiring::Usage,
        Expiring::LimitState,
        Expiring::Audit,
        Expiring::SpentIds,
        Expiring::Mail,
        Expiring::Resets,
    ];

    /// The table's name (the `table` label of the purge metric).
    pub fn table(self) -> &'static str {
        match self {
            Expiring::RevokedTokens => "revoked_tokens",
            Expiring::Changes => "changes",
            Expiring::AuthCodes => "auth_codes",
            Expiring::Grants => "grants",
            Expiring::GrantTokens => "grant_tokens",
            Expiring::Sessions => "sessions",
            Expiring::Usage => "token_usage",
            Expiring::LimitState => "limit_state",
            Expiring::Audit => "audit_log",
            Expiring::SpentIds => "spent_ids",
            Expiring::Mail => "mail_outbox",
            Expiring::Resets => "password_resets",
        }
    }
}

/// The migrations compiled into this build, per engine.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// The channel every change-feed insert notifies on PostgreSQL (migration 0002's trigger).
pub const CHANGES_CHANNEL: &str = "keyward_changes";

impl Store {
    /// Connects to `url`: `postgres://…`/`postgresql://…`, `sqlite://PATH`, `sqlite:PATH`, or a plain file path.
    pub async fn connect(url: &str, pool: &PoolSettings) -> Result<Self, sqlx::Error> {
        let mut listen = None;
        let (db, control) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?.application_name("keyward");
            listen = Some((options.clone(), pool.acquire_timeout));
            let control = PgPoolOptions::new()
                .max_connections(CONTROL_CONNECTIONS)
                .acquire_timeout(pool.acquire_timeout)
                .connect_lazy_with(options.clone());
            (
                Db::Postgres(
                    PgPoolOptions::new()
                        .max_connections(pool.max_connections)
                        .acquire_timeout(pool.acquire_timeout)
                        .connect_with(options)
                        .await?,
                ),
                Db::Postgres(control),
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
            let control = SqlitePoolOptions::new()
                .max_connections(CONTROL_CONNECTIONS)
                .acquire_timeout(pool.acquire_timeout)
                .connect_lazy_with(options.clone());
            (
                Db::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(pool.max_connections)
                        .acquire_timeout(pool.acquire_timeout)
                        .connect_with(options)
                        .await?,
                ),
                Db::Sqlite(control),
            )
        };
        Ok(Self {
            db,
            control,
            listen,
            spend_queue: Default::default(),
        })
    }

    /// The same store over the control connections: for the change feed and readiness, never for requests.
    pub fn control(&self) -> Store {
        Store {
            db: self.control.clone(),
            control: self.control.clone(),
            listen: None,
            spend_queue: self.spend_queue.clone(),
        }
    }

    /// Applies the migrations of the engine in use. On PostgreSQL sqlx holds an advisory lock meanwhile, so
    /// nodes starting together migrate once (the others wait, then find nothing to do). A database whose schema
    /// is newer than this build knows is refused before anything runs: an older node must not write to it.
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        let known = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        if let Some(found) = self.schema_version().await? {
            if found > known {
                return Err(MigrateError::Newer { found, known });
            }
        }
        match &self.db {
            Db::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
            Db::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
        }
        .map_err(MigrateError::Failed)
    }

    fn migrator(&self) -> &'static Migrator {
        match self.db {
            Db::Sqlite(_) => &SQLITE_MIGRATIONS,
            Db::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// The highest migration applied to the database, or `None` on a database never migrated.
    pub async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        let found: Result<(Option<i64>,), StoreError> = on_db!(&self.db, |p| sqlx::query_as(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success"
        )
        .fetch_one(p)
        .await)
        .map_err(StoreError::from);
        match found {
            Ok((v,)) => Ok(v),
            // No migration table yet: a new database.
            Err(StoreError::Db(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// PostgreSQL: a listener on the change channel over its own connection (not one of the pool's), which
    /// reconnects by itself after a failure. `None` on SQLite, which has no notifications.
    pub async fn change_listener(&self) -> Option<Result<PgListener, StoreError>> {
        let (options, timeout) = self.listen.clone()?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect_lazy_with(options);
        Some(
            async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen(CHANGES_CHANNEL).await?;
                Ok(listener)
            }
            .await,
        )
    }

    /// Deletes up to `limit` expired rows of `kind` at `now` (one small batch), audit entries once older than
    /// `audit_retention` seconds; returns how many.
    pub async fn purge_expired(
        &self,
        kind: Expiring,
        now: i64,
        audit_retention: i64,
        limit: i64,
    ) -> Result<u64, StoreError> {
        match kind {
            Expiring::RevokedTokens => self.revoked_purge(now, limit).await,
            Expiring::Changes => self.changes_purge(now - CHANGES_KEPT_SECONDS, limit).await,
            Expiring::AuthCodes => self.codes_purge(now - CODES_KEPT_SECONDS, limit).await,
            Expiring::Grants => self.grants_purge(now, limit).await,
            Expiring::GrantTokens => self.grant_tokens_purge(now, limit).await,
            Expiring::Sessions => self.sessions_purge(now, limit).await,
            Expiring::Usage => self.usage_purge(now - USAGE_KEPT_SECONDS, limit).await,
            Expiring::LimitState => self.limit_purge(now, limit).await,
            Expiring::Audit => self.audit_purge(now - audit_retention, limit).await,
            Expiring::SpentIds => self.spent_purge(now, limit).await,
            Expiring::Mail => self.mail_purge(now - MAIL_KEPT_SECONDS, limit).await,
            Expiring::Resets => self.resets_purge(now, limit).await,
        }
    }

    /// Runs one purge batch: `sql` deletes up to `$2` rows older than `$1` (`before`); returns how many it deleted.
    pub(crate) async fn delete_batch(
        &self,
        sql: &str,
        before: i64,
        limit: i64,
    ) -> Result<u64, StoreError> {
        Ok(on_db!(&self.db, |p| sqlx::query(sql)
            .bind(before)
            .bind(limit)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// Starts a transaction that may write. On SQLite it takes the database's write lock at once (`BEGIN
    /// IMMEDIATE`, waiting up to the busy timeout for it): a deferred transaction that reads first and writes
    /// later fails at once with "database is locked" when another connection wrote in between, since its read
    /// snapshot cannot become a write. On PostgreSQL it is a plain `BEGIN` (rows are locked as they are read
    /// with `FOR UPDATE` where a decision depends on them).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match &self.db {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Starts a transaction that only reads, so several reads agree with each other: one snapshot for all of them
    /// (SQLite's deferred read transaction, which takes no write lock and runs beside the writer; PostgreSQL's
    /// `REPEATABLE READ`, since at its default level each statement would see commits made since the one before).
    pub async fn begin_read(&self) -> Result<Tx, StoreError> {
        Ok(match &self.db {
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Db::Postgres(p) => Tx::Postgres(
                p.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?,
            ),
        })
    }

    /// The database's clock in Unix microseconds: the one clock of a cluster (`clock.rs`). SQLite reads the
    /// machine's clock (to the millisecond); PostgreSQL its server's.
    pub async fn clock_us(&self) -> Result<i64, StoreError> {
        let sql = match self.db {
            Db::Postgres(_) => "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT",
            Db::Sqlite(_) => {
                "SELECT CAST(ROUND((julianday('now') - 2440587.5) * 86400000000.0) AS INTEGER)"
            }
        };
        let (us,): (i64,) = on_db!(&self.db, |p| sqlx::query_as(sql).fetch_one(p).await)?;
        Ok(us)
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

    /// The pool's open connections and how many of them are idle (for the metrics).
    pub fn pool_stats(&self) -> (u32, usize) {
        on_db!(&self.db, |p| (p.size(), p.num_idle()))
    }

    /// Closes the pools.
    pub async fn close(&self) {
        on_db!(&self.db, |p| p.close().await);
        on_db!(&self.control, |p| p.close().await);
    }
}

/// Why migrating did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database was migrated by a newer Keyward.
    #[error(
        "the database schema is at version {found}, newer than this Keyward knows (version {known}); it was \
         migrated by a newer release. Run that release (or newer) on this database; an older one must not write to it"
    )]
    Newer {
        /// The database's version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// Reading the schema version failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A migration failed.
    #[error("{0}")]
    Failed(sqlx::migrate::MigrateError),
}

/// The `LIKE` pattern (with `ESCAPE '\'`) of "contains `search`, in any ASCII case", for a search box; `''` when there is
/// no search, which the queries read as "everything". The column is compared lower-cased.
pub(crate) fn contains_pattern(search: Option<&str>) -> String {
    match search.map(str::trim).filter(|s| !s.is_empty()) {
        None => String::new(),
        Some(s) => {
            let mut p = String::with_capacity(s.len() + 2);
            p.push('%');
            // ASCII only: SQLite's LOWER() folds nothing else, and both engines must find the same rows.
            for ch in s.to_ascii_lowercase().chars() {
                if matches!(ch, '%' | '_' | '\\') {
                    p.push('\\');
                }
                p.push(ch);
            }
            p.push('%');
            p
        }
    }
}

/// Splits a space-delimited list column.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}
