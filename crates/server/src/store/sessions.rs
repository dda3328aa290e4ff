//! `sessions` as their account sees them: listed with the device and address they came from, ended one by one or
//! all but the current one, and their last use noted at most once a minute.

use super::{Store, StoreError, Tx, on_db, on_tx};

/// How stale a session's recorded last use may get before a page view writes it again: a write per page view would
/// be a write per click.
pub(super) const LAST_USED_PRECISION: i64 = 60;

/// A session as its account sees it: never the cookie or its digest.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct SessionRow {
    /// Its id (`ses_…`); `None` for a session opened before sessions had ids.
    pub id: Option<String>,
    /// The digest of its cookie, to tell the current session apart (never shown).
    pub digest: Vec<u8>,
    /// The browser it was opened in (its User-Agent, shortened).
    pub device: String,
    /// The address it was opened from.
    pub address: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, to the minute; 0 when never noted.
    pub last_used_at: i64,
}

/// Who opens a session, as the sign-in saw it.
#[derive(Debug, Clone, Default)]
pub struct SessionOrigin {
    /// The session's id.
    pub id: String,
    /// The browser (User-Agent), shortened.
    pub device: String,
    /// The peer's address.
    pub address: String,
}

impl Store {
    /// The live sessions of an account, the most recently used first.
    pub async fn sessions_of(
        &self,
        account_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRow>, StoreError> {
        Ok(on_db!(&self.db, |p| sqlx::query_as(
            "SELECT id, digest, device, address, created_at, last_used_at FROM sessions \
             WHERE account_id = $1 AND expires_at > $2 ORDER BY last_used_at DESC, created_at DESC"
        )
        .bind(account_id)
        .bind(now)
        .fetch_all(p)
        .await)?)
    }

    /// Notes a session's use at `now` when the recorded one is older than [`LAST_USED_PRECISION`].
    pub async fn session_touch(&self, digest: &[u8], now: i64) -> Result<(), StoreError> {
        on_db!(&self.db, |p| sqlx::query(
            "UPDATE sessions SET last_used_at = $2 WHERE digest = $1 AND last_used_at <= $3"
        )
        .bind(digest)
        .bind(now)
        .bind(now - LAST_USED_PRECISION)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

impl Tx {
    /// Opens a session for `account_id` whose cookie's digest is `digest`, at `now` until `expires_at`.
    pub async fn session_open(
        &mut self,
        account_id: &str,
        digest: &[u8],
        origin: &SessionOrigin,
        (now, expires_at): (i64, i64),
    ) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO sessions (digest, account_id, created_at, expires_at, id, device, address, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $3)"
        )
        .bind(digest)
        .bind(account_id)
        .bind(now)
        .bind(expires_at)
        .bind(&origin.id)
        .bind(&origin.device)
        .bind(&origin.address)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Ends the session `id` of `account_id`; `false` when it has no such session.
    pub async fn session_end(&mut self, account_id: &str, id: &str) -> Result<bool, StoreError> {
        let n = on_tx!(self, |p| sqlx::query(
            "DELETE FROM sessions WHERE account_id = $1 AND id = $2"
        )
        .bind(account_id)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Ends every session of `account_id` but the one whose cookie digest is `keep`; returns how many ended.
    pub async fn sessions_end_others(
        &mut self,
        account_id: &str,
        keep: &[u8],
    ) -> Result<u64, StoreError> {
        Ok(on_tx!(self, |p| sqlx::query(
            "DELETE FROM sessions WHERE account_id = $1 AND digest <> $2"
        )
        .bind(account_id)
        .bind(keep)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?)
    }
}
