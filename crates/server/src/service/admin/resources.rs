//! Resources (the APIs tokens are for): creating, listing, changing and deleting them, checking the resources a
//! configuration declares, and their JSON shape. Part of the admin operations, with the same rules as clients.

use keyward_core::registration::ResourceRegistration;
use keyward_core::registration::resource as registration;
use keyward_core::resource::{ADMIN_READ_SCOPE, ADMIN_RESOURCE, ADMIN_SCOPE};
use serde::Serialize;
use serde_json::json;

use super::{Actor, Admin, AdminError, ResourceInput, ResourcePatch, not_found, refused};
use crate::crypto::random_id;
use crate::store::{ResourceRow, StoreError, Tx};

/// Creates a resource inside `tx`.
pub async fn resource_create_in(
    tx: &mut Tx,
    actor: &Actor,
    input: ResourceInput,
    max_ttl: i64,
    now: i64,
) -> Result<ResourceRow, AdminError> {
    let row = new_resource(input, max_ttl, now)?;
    tx.resource_insert(&row).await.map_err(|e| match e {
        StoreError::Conflict(_) => {
            AdminError::Conflict("identifier: a resource with this identifier exists".into())
        }
        e => e.into(),
    })?;
    tx.audit(
        &actor.entry(
            "resource.create",
            &row.id,
            json!({"identifier": row.identifier, "scopes": row.scopes}),
        ),
        now,
    )
    .await?;
    tx.change("resource", &row.id, now).await?;
    Ok(row)
}

/// A new resource's row: the defaults (15-minute tokens, ES256) under the input, every field checked by
/// `keyward_core::registration::resource`.
fn new_resource(input: ResourceInput, max_ttl: i64, now: i64) -> Result<ResourceRow, AdminError> {
    // The identifier first, as it always was.
    let new = ResourceRegistration::new(&input.identifier).map_err(refused)?;
    let change = input.into_patch().change().map_err(refused)?;
    let created = registration::apply(new, change, max_ttl).map_err(refused)?;
    Ok(ResourceRow::new(random_id("res_"), &created, now))
}

/// Applies `patch` to `row`, checked by `keyward_core::registration::resource::apply`.
fn apply_resource(
    row: &mut ResourceRow,
    patch: ResourcePatch,
    max_ttl: i64,
) -> Result<(), AdminError> {
    let change = patch.change().map_err(refused)?;
    let applied = registration::apply(row.registration(), change, max_ttl).map_err(refused)?;
    row.set_registration(&applied);
    Ok(())
}

impl Admin {
    /// Creates a resource.
    pub async fn resource_create(
        &self,
        actor: &Actor,
        input: ResourceInput,
    ) -> Result<ResourceView, AdminError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let row = resource_create_in(&mut tx, actor, input, self.max_access_token_ttl, now).await?;
        self.finish(tx, "resource", &row.id).await?;
        Ok(ResourceView::from(&row))
    }

    /// Every resource.
    pub async fn resources_list(&self) -> Result<Vec<ResourceView>, AdminError> {
        let rows = self.store.resources_all().await?;
        Ok(rows.iter().map(ResourceView::from).collect())
    }

    /// One resource by id or identifier.
    pub async fn resource_get(&self, id: &str) -> Result<ResourceView, AdminError> {
        let row = self
            .store
            .resource_get(id)
            .await
            .map_err(|e| not_found(e, "resource"))?;
        Ok(ResourceView::from(&row))
    }

    /// Changes a resource.
    pub async fn resource_update(
        &self,
        actor: &Actor,
        id: &str,
        patch: ResourcePatch,
    ) -> Result<ResourceView, AdminError> {
        let now = self.clock.now();
        let detail =
            json!({"name": patch.name, "scopes": patch.scopes, "signing_alg": patch.signing_alg});
        let mut tx = self.store.begin().await?;
        tx.change("resource", id, now).await?;
        let mut row = tx
            .resource_get(id, true)
            .await
            .map_err(|e| not_found(e, "resource"))?;
        apply_resource(&mut row, patch, self.max_access_token_ttl)?;
        // Without `keyward:admin` in the catalogue no token carries it, and no admin client could undo the change.
        if row.identifier == ADMIN_RESOURCE
            && !crate::store::split_list(&row.scopes)
                .iter()
                .any(|s| s == ADMIN_SCOPE)
        {
            return Err(AdminError::Conflict(format!(
                "scopes: the admin API resource must keep the scope {ADMIN_SCOPE}, or no admin client could \
                     use the admin API"
            )));
        }
        row.updated_at = now;
        tx.resource_update(&row).await?;
        tx.audit(&actor.entry("resource.update", &row.id, detail), now)
            .await?;
        self.finish(tx, "resource", &row.id).await?;
        Ok(ResourceView::from(&row))
    }

    /// The CLI's way back into a locked-out admin API: creates the admin resource when it is missing, or adds
    /// `keyward:admin` and `keyward:admin:read` back to its scopes. Returns it, and whether anything changed.
    pub async fn admin_resource_restore(
        &self,
        actor: &Actor,
    ) -> Result<(ResourceView, bool), AdminError> {
        let admin_scopes = [ADMIN_SCOPE, ADMIN_READ_SCOPE];
        let row = match self.store.resource_get(ADMIN_RESOURCE).await {
            Ok(row) => row,
            Err(StoreError::NotFound) => {
                let input = ResourceInput {
                    identifier: ADMIN_RESOURCE.into(),
                    name: "Keyward admin API".into(),
                    scopes: admin_scopes.map(String::from).to_vec(),
                    access_token_ttl: None,
                    signing_alg: None,
                    scope_details: None,
                    require_dpop: None,
                };
                return Ok((self.resource_create(actor, input).await?, true));
            }
            Err(e) => return Err(e.into()),
        };
        let mut scopes = crate::store::split_list(&row.scopes);
        let before = scopes.len();
        for s in admin_scopes {
            if !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        }
        if scopes.len() == before {
            return Ok((ResourceView::from(&row), false));
        }
        let patch = ResourcePatch {
            scopes: Some(scopes),
            ..ResourcePatch::default()
        };
        Ok((self.resource_update(actor, &row.id, patch).await?, true))
    }

    /// Deletes a resource no client uses.
    pub async fn resource_delete(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        let now = self.clock.now();
        let row = self.resource_get(id).await?;
        if row.identifier == ADMIN_RESOURCE {
            return Err(AdminError::Conflict(
                "the admin API resource cannot be deleted".into(),
            ));
        }
        let mut tx = self.store.begin().await?;
        tx.change("resource", &row.id, now).await?;
        let serving = tx.clients_serving(&row.identifier).await?;
        if !serving.is_empty() {
            return Err(AdminError::Conflict(format!(
                "the resource is served by {} client(s), e.g. {}",
                serving.len(),
                serving[0]
            )));
        }
        tx.resource_delete(&row.id).await?;
        tx.audit(
            &actor.entry(
                "resource.delete",
                &row.id,
                json!({"identifier": row.identifier}),
            ),
            now,
        )
        .await?;
        self.finish(tx, "resource", &row.id).await
    }
}

/// A resource as the admin API, the CLI and the operator's pages show it: scopes as a list, scope details as an
/// object. Its members are in the order the admin API has always written them (alphabetical).
#[derive(Debug, Clone, Serialize)]
pub struct ResourceView {
    /// Seconds.
    pub access_token_ttl: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// `res_…`.
    pub id: String,
    /// The audience string.
    pub identifier: String,
    /// Display name.
    pub name: String,
    /// Scope descriptions, categories and access levels.
    pub scope_details: serde_json::Value,
    /// The scope catalogue.
    pub scopes: Vec<String>,
    /// `ES256`, `RS256` or `EdDSA`.
    pub signing_alg: String,
    /// RFC 9449 §7.1: every token for it must be DPoP-bound.
    pub require_dpop: bool,
    /// Unix seconds.
    pub updated_at: i64,
}

impl From<&ResourceRow> for ResourceView {
    fn from(r: &ResourceRow) -> Self {
        ResourceView {
            access_token_ttl: r.access_token_ttl,
            created_at: r.created_at,
            id: r.id.clone(),
            identifier: r.identifier.clone(),
            name: r.name.clone(),
            scope_details: serde_json::from_str(&r.scope_details).unwrap_or_else(|_| json!({})),
            scopes: crate::store::split_list(&r.scopes),
            require_dpop: r.require_dpop,
            signing_alg: r.signing_alg.clone(),
            updated_at: r.updated_at,
        }
    }
}

/// A resource as the admin API and the CLI write it in JSON.
pub fn resource_json(r: &ResourceView) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or_else(|_| json!({}))
}
