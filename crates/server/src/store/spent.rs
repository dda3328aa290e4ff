//! `spent_ids`: ids that may be used once across the cluster (a client assertion's `jti`, RFC 7523 §3), each kept
//! until it could no longer be accepted anyway, then purged.

use super::{Store, StoreError, on_db};

impl Store {
    /// Spends `key` until `expires_at`: `true` the first time, `false` while it is spent (a replay). An entry
    /// whose time has passed (`expires_at` ≤ `now`) but that the purge has not removed yet is spent afresh. One
    /// statement on the primary key, so of any number of nodes spending the same key at once exactly one is told
    /// `true`.
    pub async fn spend_once(
        &self,
        key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        // SQLite: one at a time (`Store::spend_queue`); PostgreSQL takes them side by side and groups their commits.
        let _turn = match &self.db {
            super::Db::Sqlite(_) => Some(self.spend_queue.lock().await),
            super::Db::Postgres(_) => None,
        };
        let changed = on_db!(&self.db, |p| sqlx::query(
            "INSERT INTO spent_ids (key, expires_at) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE spent_ids.expires_at <= $3"
        )
        .bind(key)
        .bind(expires_at)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    /// Removes up to `limit` spent ids whose time has passed (one batch of the purge).
    pub async fn spent_purge(&self, now: i64, limit: i64) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM spent_ids WHERE key IN \
             (SELECT key FROM spent_ids WHERE expires_at <= $1 LIMIT $2)",
            now,
            limit,
        )
        .await
    }
}
