//! `limit_state`: the rate-limit and quota state nodes share. A node reads a row, lets `keyward_core::limit`
//! decide, and writes the result back only if the row is still what it read (compare and set), so two nodes
//! leasing at once never both spend the same allowance. The same two statements run on both engines.

use keyward_core::limit::Take;

use super::{Store, StoreError, on_db};

/// How often a lease retries when other nodes keep changing the row under it; each retry waits a random
/// moment of up to one more millisecond than the last, so nodes racing for one row fall out of step.
const ATTEMPTS: u64 = 24;

/// The conflict `limit_take` gives up with.
const CONTENDED: &str = "the limit's state kept changing; try again";

impl Store {
    /// Reads `key`'s state (0 when absent), asks `decide` what to grant and until when (Unix seconds) the new
    /// state matters, and stores it. Returns `decide`'s answer once it is stored.
    pub async fn limit_take(
        &self,
        key: &str,
        decide: impl Fn(i64) -> (Take, i64),
    ) -> Result<Take, StoreError> {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                let jitter = u64::from(crate::crypto::random::<1>()[0]) * attempt * 1_000 / 255;
                tokio::time::sleep(std::time::Duration::from_micros(jitter)).await;
            }
            let current: Option<(i64,)> = on_db!(&self.db, |p| sqlx::query_as(
                "SELECT value FROM limit_state WHERE key = $1"
            )
            .bind(key)
            .fetch_optional(p)
            .await)?;
            let (take, expires_at) = decide(current.map_or(0, |(v,)| v));
            let written = match current {
                // Nothing recorded and nothing to record: no write.
                None if take.state == 0 => return Ok(take),
                None => on_db!(&self.db, |p| sqlx::query(
                    "INSERT INTO limit_state (key, value, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO NOTHING"
                )
                .bind(key)
                .bind(take.state)
                .bind(expires_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?,
                Some((old,)) if old == take.state => return Ok(take),
                Some((old,)) => on_db!(&self.db, |p| {
                    sqlx::query(
                    "UPDATE limit_state SET value = $2, expires_at = $3 WHERE key = $1 AND value = $4"
                )
                .bind(key)
                .bind(take.state)
                .bind(expires_at)
                .bind(old)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
                })?,
            };
            if written == 1 {
                return Ok(take);
            }
        }
        Err(StoreError::Conflict(CONTENDED))
    }

    /// Deletes up to `limit` rows that expired before `now`.
    pub async fn limit_purge(&self, now: i64, limit: i64) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM limit_state WHERE key IN \
             (SELECT key FROM limit_state WHERE expires_at < $1 LIMIT $2)",
            now,
            limit,
        )
        .await
    }
}
