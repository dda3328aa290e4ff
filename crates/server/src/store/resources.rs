//! `resources`: the APIs tokens are issued for.

use std::collections::BTreeMap;

use keyward_core::registration::ResourceRegistration;
use keyward_core::resource::{ScopeDetail, SigningAlg};

use super::{Store, StoreError, Tx, on_db, on_tx, split_list};

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
    /// RFC 9449 §7.1: every token for it must be DPoP-bound.
    pub require_dpop: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl ResourceRow {
    /// A new resource's row holding `r`, every field written.
    pub fn new(id: String, r: &ResourceRegistration, now: i64) -> Self {
        ResourceRow {
            id,
            identifier: r.identifier.clone(),
            name: r.name.clone(),
            scopes: r.scopes.join(" "),
            access_token_ttl: r.access_token_ttl,
            signing_alg: r.signing_alg.to_string(),
            scope_details: details_text(&r.scope_details),
            require_dpop: r.require_dpop,
            created_at: now,
            updated_at: now,
        }
    }

    /// The registration this row holds. An algorithm this version cannot read (a newer one wrote it) is read as
    /// ES256, scope details it cannot read as none.
    pub fn registration(&self) -> ResourceRegistration {
        ResourceRegistration {
            identifier: self.identifier.clone(),
            name: self.name.clone(),
            scopes: split_list(&self.scopes),
            access_token_ttl: self.access_token_ttl,
            signing_alg: self.signing_alg.parse().unwrap_or(SigningAlg::ES256),
            scope_details: serde_json::from_str(&self.scope_details).unwrap_or_default(),
            require_dpop: self.require_dpop,
        }
    }

    /// Writes `r` into the row but its identifier, which never changes. A field whose value did not change keeps
    /// its stored text, so what a newer version wrote and this one cannot read survives a change to another field.
    pub fn set_registration(&mut self, r: &ResourceRegistration) {
        let before = self.registration();
        self.name.clone_from(&r.name);
        if before.scopes != r.scopes {
            self.scopes = r.scopes.join(" ");
        }
        self.access_token_ttl = r.access_token_ttl;
        if before.signing_alg != r.signing_alg {
            self.signing_alg = r.signing_alg.to_string();
        }
        if before.scope_details != r.scope_details {
            self.scope_details = details_text(&r.scope_details);
        }
        self.require_dpop = r.require_dpop;
    }
}

/// The scope details column: JSON, scope → `ScopeDetail`. Writing a map of strings to JSON cannot fail; `{}` stands
/// in if it ever did.
fn details_text(details: &BTreeMap<String, ScopeDetail>) -> String {
    serde_json::to_string(details).unwrap_or_else(|_| "{}".into())
}

const COLUMNS: &str = "id, identifier, name, scopes, access_token_ttl, signing_alg, scope_details, require_dpop, created_at, updated_at";

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
             scope_details, require_dpop) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
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
        .bind(r.require_dpop)
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
             scope_details = $7, require_dpop = $8 WHERE id = $1"
        )
        .bind(&r.id)
        .bind(&r.name)
        .bind(&r.scopes)
        .bind(r.access_token_ttl)
        .bind(&r.signing_alg)
        .bind(r.updated_at)
        .bind(&r.scope_details)
        .bind(r.require_dpop)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use keyward_core::registration::ResourceRegistration;
    use keyward_core::resource::{ScopeDetail, SigningAlg};

    use super::ResourceRow;

    #[test]
    fn a_row_holds_its_registration() {
        let new = ResourceRegistration::new("https://api").unwrap();
        let row = ResourceRow::new("res_1".into(), &new, 100);
        assert_eq!(
            (
                row.access_token_ttl,
                row.signing_alg.as_str(),
                row.scope_details.as_str()
            ),
            (900, "ES256", "{}")
        );
        let r = ResourceRegistration {
            name: "API".into(),
            scopes: vec!["read".into(), "write".into()],
            signing_alg: SigningAlg::EdDSA,
            scope_details: BTreeMap::from([(
                "read".to_owned(),
                ScopeDetail {
                    description: Some("Read orders".into()),
                    ..ScopeDetail::default()
                },
            )]),
            ..new
        };
        let row = ResourceRow::new("res_1".into(), &r, 100);
        assert_eq!(row.scopes, "read write");
        assert_eq!(
            row.scope_details,
            r#"{"read":{"description":"Read orders"}}"#
        );
        assert_eq!(row.registration(), r);
    }

    #[test]
    fn a_change_keeps_what_this_version_cannot_read() {
        let new = ResourceRegistration::new("https://api").unwrap();
        let mut row = ResourceRow::new("res_1".into(), &new, 100);
        row.signing_alg = "ML-DSA-44".into();
        let mut r = row.registration();
        assert_eq!(r.signing_alg, SigningAlg::ES256);
        r.name = "Renamed".into();
        row.set_registration(&r);
        assert_eq!(
            (row.name.as_str(), row.signing_alg.as_str()),
            ("Renamed", "ML-DSA-44")
        );
        r.signing_alg = SigningAlg::RS256;
        row.set_registration(&r);
        assert_eq!(row.signing_alg, "RS256");
    }
}
