//! `leases`: work that one node of a cluster does at a time (the purge of expired rows). A lease is taken or
//! renewed with one upsert and lapses by itself when its holder stops renewing it.

use super::{Store, StoreError, on_db};

impl Store {
    /// Takes or renews the lease `name` for `holder` until `now + ttl`; returns whether `holder` holds it. Another
    /// holder's lease is taken over only once it has expired.
    pub async fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl: i64,
    ) -> Result<bool, StoreError> {
        let taken = on_db!(&self.db, |p| {
            sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4"
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(taken == 1)
    }

    /// Gives the lease up (at shutdown), so another node takes it at once.
    pub async fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        on_db!(&self.db, |p| sqlx::query(
            "DELETE FROM leases WHERE name = $1 AND holder = $2"
        )
        .bind(name)
        .bind(holder)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The current holder of `name` and when its lease ends, if anyone holds it.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<(String, i64)>, StoreError> {
        Ok(on_db!(&self.db, |p| sqlx::query_as(
            "SELECT holder, expires_at FROM leases WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(p)
        .await)?)
    }
}
