//! `token_usage`: tokens issued per client per hour. Counted in memory on the token path and added here by a
//! periodic flush (the `usage` module), so issuing a token writes nothing.

use super::{Store, StoreError, on_db};

/// Rows per multi-row upsert: 3 bound values each, far under both engines' limits.
const UPSERT_ROWS: usize = 1_000;

/// Tokens issued to one client in one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageRow {
    /// Unix time the hour starts.
    pub hour: i64,
    /// Tokens issued in it.
    pub tokens: i64,
}

impl Store {
    /// Adds counts to their (client, instance, hour) rows, creating them as needed; one statement per thousand
    /// rows, each atomic on its own. Returns how many rows were written before a failure, with the failure, so the
    /// caller keeps only the rest for the next flush and nothing is counted twice.
    pub async fn usage_add(
        &self,
        counts: &[(String, i64, i64, i64)],
    ) -> Result<(), (usize, StoreError)> {
        let mut written = 0;
        for chunk in counts.chunks(UPSERT_ROWS) {
            let done = on_db!(&self.db, |p| {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO token_usage (client_id, client_instance, hour, tokens) ",
                );
                q.push_values(chunk, |mut b, (client, instance, hour, n)| {
                    b.push_bind(client)
                        .push_bind(*instance)
                        .push_bind(*hour)
                        .push_bind(*n);
                });
                q.push(
                    " ON CONFLICT (client_id, client_instance, hour) \
                     DO UPDATE SET tokens = token_usage.tokens + excluded.tokens",
                );
                q.build().execute(p).await.map(|_| ())
            });
            if let Err(e) = done {
                return Err((written, e.into()));
            }
            written += chunk.len();
        }
        Ok(())
    }

    /// One client instance's hours from `since` (inclusive), oldest first.
    pub async fn usage_of(
        &self,
        client_id: &str,
        instance: i64,
        since: i64,
    ) -> Result<Vec<UsageRow>, StoreError> {
        Ok(on_db!(&self.db, |p| sqlx::query_as(
            "SELECT hour, tokens FROM token_usage WHERE client_id = $1 AND client_instance = $2 \
             AND hour >= $3 ORDER BY hour"
        )
        .bind(client_id)
        .bind(instance)
        .bind(since)
        .fetch_all(p)
        .await)?)
    }

    /// Deletes up to `limit` rows of hours before `before`.
    pub async fn usage_purge(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        self.delete_batch(
            "DELETE FROM token_usage WHERE (client_id, client_instance, hour) IN \
             (SELECT client_id, client_instance, hour FROM token_usage WHERE hour < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}
