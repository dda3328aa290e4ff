//! `meta`: small facts about the installation (whether first start has run).

use super::{Store, StoreError, Tx, on_db, on_tx};

impl Store {
    /// Reads a meta value.
    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let v: Option<(String,)> = on_db!(&self.db, |p| sqlx::query_as(
            "SELECT value FROM meta WHERE key = $1"
        )
        .bind(key)
        .fetch_optional(p)
        .await)?;
        Ok(v.map(|(v,)| v))
    }
}

impl Tx {
    /// Inserts a meta value unless the key exists; returns whether this call inserted it. Used as a
    /// once-only claim, so two nodes starting together run first-start work once.
    pub async fn meta_claim(&mut self, key: &str, value: &str) -> Result<bool, StoreError> {
        let r = on_tx!(self, |c| sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
        )
        .bind(key)
        .bind(value)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(r == 1)
    }
}

impl Store {
    /// Counts the rows of a table (tests and diagnostics; `table` must be one of Keyward's own).
    pub async fn count_rows(&self, table: &str) -> Result<i64, StoreError> {
        const TABLES: [&str; 10] = [
            "clients",
            "client_resources",
            "client_secrets",
            "resources",
            "signing_keys",
            "revoked_tokens",
            "audit_log",
            "changes",
            "meta",
            "leases",
        ];
        if !TABLES.contains(&table) {
            return Err(StoreError::NotFound);
        }
        let (n,): (i64,) = on_db!(&self.db, |p| sqlx::query_as(&format!(
            "SELECT COUNT(*) FROM {table}"
        ))
        .fetch_one(p)
        .await)?;
        Ok(n)
    }
}
