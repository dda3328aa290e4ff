//! `resources`: the APIs tokens are issued for.

use super::{Store, StoreError, Tx, on_db, on_tx};

/// A resource row.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct ResourceRow {
    /// Internal id.
    pub id: String,
    /// The audience string.
    pub identifier: String,
    /// Display name.
    pub name: String,
    /// Space-delimited scope catalogue.
    pub scopes: String,
    /// Seconds.
    pub access_token_ttl: i64,
    /// `ES256`, `RS256` or `EdDSA`.
    pub signing_alg: String,
    /// JSON: scope → `ScopeDetail` (what it means for people).
    pub scope_details: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, identifier, name, scopes, access_token_ttl, signing_alg, scope_details, created_at, updated_at";

impl Store {
    /// Every resource, by identifier.
    pub async fn resources_all(&self) -> Result<Vec<ResourceRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM resources ORDER BY identifier");
        Ok(on_db!(&self.db, |p| sqlx::query_as(&sql)
            .fetch_all(p)
            .await)?)
    }

    /// One resource by internal id or identifier.
    pub async fn resource_get(&self, id_or_identifier: &str) -> Result<ResourceRow, StoreError> {
        let mut tx = self.begin_read().await?;
        let found = tx.resource_get(id_or_identifier, false).await;
        tx.commit().await?;
        found
    }
}

impl Tx {
    /// Inserts a resource.
    pub async fn resource_insert(&mut self, r: &ResourceRow) -> Result<(), StoreError> {
        on_tx!(self, |c| {
            sqlx::query(
            "INSERT INTO resources (id, identifier, name, scopes, access_token_ttl, signing_alg, created_at, updated_at, \
             scope_details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )
        .bind(&r.id)
        .bind(&r.identifier)
        .bind(&r.name)
        .bind(&r.scopes)
        .bind(r.access_token_ttl)
        .bind(&r.signing_alg)
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(&r.scope_details)
        .execute(c)
        .await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Updates the mutable fields of a resource (the identifier never changes: it is every token's audience).
    pub async fn resource_update(&mut self, r: &ResourceRow) -> Result<(), StoreError> {
        let done = on_tx!(self, |c| {
            sqlx::query(
            "UPDATE resources SET name = $2, scopes = $3, access_token_ttl = $4, signing_alg = $5, updated_at = $6, \
             scope_details = $7 WHERE id = $1"
        )
        .bind(&r.id)
        .bind(&r.name)
        .bind(&r.scopes)
        .bind(r.access_token_ttl)
        .bind(&r.signing_alg)
        .bind(r.updated_at)
        .bind(&r.scope_details)
        .execute(c)
        .await.map(|r| r.rows_affected())
        })?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Deletes a resource no client refers to.
    pub async fn resource_delete(&mut self, id: &str) -> Result<(), StoreError> {
        let (used,): (i64,) = on_tx!(self, |c| {
            sqlx::query_as(
            "SELECT COUNT(*) FROM client_resources cr JOIN resources r ON r.identifier = cr.resource WHERE r.id = $1"
        )
        .bind(id)
        .fetch_one(c)
        .await
        })?;
        if used > 0 {
            return Err(StoreError::Conflict(
                "the resource is still allowed to some clients",
            ));
        }
        let done = on_tx!(self, |c| sqlx::query("DELETE FROM resources WHERE id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

impl Tx {
    /// One resource by id or identifier, read inside this transaction; with `lock`, locked (see `Tx::lockable`).
    pub async fn resource_get(
        &mut self,
        id_or_identifier: &str,
        lock: bool,
    ) -> Result<ResourceRow, StoreError> {
        let sql = self.lockable(
            format!("SELECT {COLUMNS} FROM resources WHERE id = $1 OR identifier = $1"),
            lock,
        );
        Ok(on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(id_or_identifier)
            .fetch_one(c)
            .await)?)
    }
}
