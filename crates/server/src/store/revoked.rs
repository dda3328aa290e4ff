//! `revoked_tokens`: the `jti` denylist of revoked access tokens, each kept until the token would have expired.

use super::{Store, StoreError, Tx, on_db, on_tx};

impl Tx {
    /// Denylists a token id until `expires_at`.
    pub async fn revoke_jti(&mut self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING"
        )
        .bind(jti)
        .bind(expires_at)
        .execute(c)
        .await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}

impl Store {
    /// Whether a token id is denylisted.
    pub async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = on_db!(&self.db, |p| sqlx::query_as(
            "SELECT expires_at FROM revoked_tokens WHERE jti = $1"
        )
        .bind(jti)
        .fetch_optional(p)
        .await)?;
        Ok(row.is_some())
    }

    /// Removes up to `limit` denylist entries whose tokens have expired (one small batch: the purge calls it
    /// until it returns less than `limit`, so no statement holds locks on many rows).
    pub async fn revoked_purge(&self, now: i64, limit: i64) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM revoked_tokens WHERE jti IN \
             (SELECT jti FROM revoked_tokens WHERE expires_at < $1 LIMIT $2)",
            now,
            limit,
        )
        .await
    }
}
