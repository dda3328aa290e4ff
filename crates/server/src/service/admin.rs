//! The admin operations, shared by the admin API and the CLI (one code path): clients and their secrets,
//! resources, signing keys and the audit log. Every change is checked, written in one transaction with its audit
//! entry and change-feed entry, then applied to this process's memory at once.

use std::collections::HashMap;
use std::sync::Arc;

use keyward_core::client::{AuthMethod, GrantType};
use keyward_core::registration::client as registration;
use keyward_core::resource::ADMIN_RESOURCE;
use serde_json::json;

pub use super::Actor;
use crate::clock::Clock;
use crate::crypto::{MasterKeys, new_secret, random_id, random_uuid};
use crate::keys::KeyRing;
use crate::memory::OnCommit;
use crate::registry::Registry;
use crate::store::{ClientRow, NewClient, SecretRow, Store, StoreError, Tx, split_list};
use crate::usage::Usage;

mod error;
mod import;
mod input;
mod keys;
mod platform;
mod resources;
mod secrets;
mod usage;
mod view;

pub use error::AdminError;
pub use input::ClientInput;
use input::{InputDetail, client_change, refused};
pub use keyward_core::registration::{DurationValue, ResourceInput, ResourcePatch};
pub use platform::AuditView;
pub use resources::{ResourceView, resource_create_in, resource_json};
use secrets::secret_view;
pub use secrets::{NewSecret, SecretView};
pub use view::ClientView;
use view::client_view;

/// The value of `d` in seconds; `field` names it in the error.
pub(crate) fn seconds(d: &DurationValue, field: &str) -> Result<i64, AdminError> {
    let s = d.raw_seconds(field).map_err(refused)?;
    if s < 0 {
        return Err(AdminError::invalid(format!(
            "{field}: must not be negative"
        )));
    }
    Ok(s)
}

/// Applies `input` on top of `row`/`resources` and checks the result against the catalogue
/// (`identifier → scopes`): the rules are `keyward_core::registration::client::apply`'s.
fn merge_client(
    row: &mut ClientRow,
    resources: &mut Vec<String>,
    input: ClientInput,
    catalogue: &HashMap<String, Vec<String>>,
) -> Result<(), AdminError> {
    let change = client_change(input)?;
    let merged = registration::apply(row.registration(resources.clone()), change, catalogue)
        .map_err(refused)?;
    row.set_registration(&merged);
    *resources = merged.resources;
    Ok(())
}

/// Checks a new client's input and builds its rows; the id is generated when the input has none.
pub(crate) fn new_client(
    input: ClientInput,
    catalogue: &HashMap<String, Vec<String>>,
    now: i64,
) -> Result<NewClient, AdminError> {
    let id = match &input.client_id {
        Some(id) => {
            registration::check_id(id).map_err(refused)?;
            id.clone()
        }
        None => random_uuid(),
    };
    let owner = input.owner_account.clone();
    let created = registration::create(owner, client_change(input)?, catalogue).map_err(refused)?;
    let row = ClientRow::new(id, &created, crate::crypto::random_instance(), now);
    Ok(NewClient {
        row,
        resources: created.resources,
    })
}

/// Creates a client and, when it authenticates with a secret, its first secret inside `tx`.
pub async fn client_create_in(
    tx: &mut Tx,
    master: &MasterKeys,
    actor: &Actor,
    input: ClientInput,
    catalogue: &HashMap<String, Vec<String>>,
    now: i64,
) -> Result<(ClientView, Option<String>), AdminError> {
    let client = new_client(input, catalogue, now)?;
    let id = client.row.id.clone();
    // The feed row first: on SQLite it takes the write lock, so the owner's checks below cannot race.
    tx.change("client", &id, now).await?;
    if let Some(owner) = &client.row.owner_account {
        // Locked (PostgreSQL) or under the write lock (SQLite): a key cannot slip in beside a concurrent create,
        // disable or delete of the account. The unique index on (owner_account, name) backs the name check.
        let account = tx.account_get(owner, true).await.map_err(|e| match e {
            StoreError::NotFound => {
                AdminError::invalid(format!("owner_account: no account has the id {owner:?}"))
            }
            e => e.into(),
        })?;
        if !account.enabled {
            return Err(AdminError::invalid(
                "owner_account: the account is disabled",
            ));
        }
        if tx.owned_name_taken(owner, &client.row.name).await? {
            return Err(name_taken());
        }
        if tx.clients_owned_ids(owner).await?.len() >= MAX_KEYS_PER_ACCOUNT {
            return Err(AdminError::TooManyKeys);
        }
    }
    tx.client_insert(&client).await.map_err(|e| match e {
        StoreError::Conflict(_) => {
            AdminError::Conflict("client_id: a client with this id exists".into())
        }
        e => e.into(),
    })?;
    // A public client holds no secret, and neither does one that authenticates by private_key_jwt alone.
    let uses_secret = split_list(&client.row.auth_methods).iter().any(|m| {
        m == AuthMethod::ClientSecretBasic.as_str() || m == AuthMethod::ClientSecretPost.as_str()
    });
    let mut secrets = Vec::new();
    let mut secret = None;
    if uses_secret {
        let (value, hint) = new_secret();
        let secret_row = SecretRow {
            id: random_id("sec_"),
            client_id: id.clone(),
            digest: master.digest(&value).to_vec(),
            hint,
            created_at: now,
            expires_at: None,
            last_used_at: None,
        };
        tx.secret_insert(&secret_row).await?;
        secrets.push(secret_row);
        secret = Some(value);
    }
    let view = client_view(&client.row, client.resources.clone(), Some(&secrets));
    tx.audit(
        &actor.entry(
            "client.create",
            &id,
            json!({"name": view.name, "resources": view.resources, "scopes": view.scopes,
                   "owner_account": view.owner_account}),
        ),
        now,
    )
    .await?;
    Ok((view, secret))
}

/// Deletes a client (its secrets and resource links go with it) inside `tx`, with its audit entry (`detail`) and
/// feed entry.
pub async fn client_delete_in(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
    detail: serde_json::Value,
    now: i64,
) -> Result<(), AdminError> {
    tx.client_delete(id, now)
        .await
        .map_err(|e| not_found(e, "client"))?;
    tx.audit(&actor.entry("client.delete", id, detail), now)
        .await?;
    tx.change("client", id, now).await?;
    Ok(())
}

/// Every resource's identifier with the scopes it offers: what registrations and allowances are checked against.
pub async fn catalogue(store: &Store) -> Result<HashMap<String, Vec<String>>, StoreError> {
    Ok(store
        .resources_all()
        .await?
        .into_iter()
        .map(|r| (r.identifier, split_list(&r.scopes)))
        .collect())
}

/// Clients and their secrets, resources, signing keys and the audit log: the admin API's and the CLI's service.
pub struct Admin {
    /// The data layer.
    pub store: Store,
    /// Secret digests and the key-encryption key.
    pub master: Arc<MasterKeys>,
    /// Where time comes from.
    pub clock: Clock,
    /// The commit hook: brings this node's memory up to date after each commit (the CLI has none).
    pub memory: Arc<dyn OnCommit>,
    /// Clients in memory (a listed client's resources, a key's instance).
    pub registry: Arc<Registry>,
    /// Signing keys (their states).
    pub keys: Arc<KeyRing>,
    /// Longest access-token lifetime a resource may be given, seconds.
    pub max_access_token_ttl: i64,
    /// Publish-then-sign delay of a new signing key, seconds.
    pub key_publish_delay: i64,
    /// The resource a new client gets when its registration names none.
    pub default_client_resource: Option<String>,
    /// Tokens issued per key per hour, not yet flushed.
    pub usage: Arc<Usage>,
}

impl Admin {
    /// Every resource's identifier with the scopes it offers.
    pub(crate) async fn catalogue(&self) -> Result<HashMap<String, Vec<String>>, AdminError> {
        Ok(catalogue(&self.store).await?)
    }

    async fn finish(&self, tx: Tx, kind: &str, key: &str) -> Result<(), AdminError> {
        tx.commit().await?;
        self.memory.committed(kind, key).await;
        Ok(())
    }

    /// A registration that names no resource gets the deployment's default (`resources_by_default`), or is
    /// refused with what to name: no client is made that can never get a token.
    pub(crate) fn with_default_resources(
        &self,
        mut input: ClientInput,
        catalogue: &HashMap<String, Vec<String>>,
    ) -> Result<ClientInput, AdminError> {
        if input.resources.is_none() {
            let known: Vec<&str> = catalogue.keys().map(String::as_str).collect();
            let serves = input
                .serves_resources
                .as_ref()
                .is_some_and(|s| !s.is_empty());
            input.resources = Some(
                keyward_core::client::resources_by_default(
                    serves,
                    self.default_client_resource.as_deref(),
                    &known,
                )
                .map_err(AdminError::invalid)?,
            );
        }
        Ok(input)
    }

    /// Creates a client; returns it and its secret (shown once; none for a public client).
    pub async fn client_create(
        &self,
        actor: &Actor,
        input: ClientInput,
    ) -> Result<(ClientView, Option<String>), AdminError> {
        let now = self.clock.now();
        let catalogue = self.catalogue().await?;
        let input = self.with_default_resources(input, &catalogue)?;
        let mut tx = self.store.begin().await?;
        let (view, secret) =
            client_create_in(&mut tx, &self.master, actor, input, &catalogue, now).await?;
        self.finish(tx, "client", &view.client_id).await?;
        Ok((view, secret))
    }

    /// One client with its secrets.
    pub async fn client_get(&self, id: &str) -> Result<ClientView, AdminError> {
        let (row, resources, secrets) = self
            .store
            .client_get(id)
            .await
            .map_err(|e| not_found(e, "client"))?;
        Ok(client_view(&row, resources, Some(&secrets)))
    }

    /// A page of clients (without secrets), ordered by id, after `after`; with `search`, those whose id or name
    /// contains it.
    pub async fn clients_list(
        &self,
        after: &str,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ClientView>, AdminError> {
        let rows = self
            .store
            .clients_page(after, search, limit.clamp(1, 1_000))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let resources = self
                .registry
                .client(&self.store, &row.id)
                .await?
                .map(|c| c.client.resources.clone())
                .unwrap_or_default();
            out.push(client_view(&row, resources, None));
        }
        Ok(out)
    }

    /// Changes a client's fields.
    pub async fn client_update(
        &self,
        actor: &Actor,
        id: &str,
        input: ClientInput,
    ) -> Result<ClientView, AdminError> {
        self.client_update_checked(actor, id, input, |_| Ok(()))
            .await
    }

    /// Changes a client's fields if `check` passes on the client as it is inside the transaction, locked: a caller
    /// that computed `input` from an earlier read (a list with one item added) refuses there to overwrite a change
    /// made since, so two concurrent edits end in one success and one refusal, never a lost write.
    pub async fn client_update_checked(
        &self,
        actor: &Actor,
        id: &str,
        input: ClientInput,
        check: impl FnOnce(&ClientRow) -> Result<(), AdminError>,
    ) -> Result<ClientView, AdminError> {
        if input.client_id.is_some() {
            return Err(AdminError::invalid("client_id: cannot be changed"));
        }
        if input.owner_account.is_some() {
            return Err(AdminError::invalid("owner_account: cannot be changed"));
        }
        let now = self.clock.now();
        let catalogue = self.catalogue().await?;
        let detail = serde_json::to_value(InputDetail::from(&input)).unwrap_or_default();
        let mut tx = self.store.begin().await?;
        // The feed row is written first: on SQLite it takes the write lock, so the read below cannot race.
        tx.change("client", id, now).await?;
        let (mut row, mut resources, secrets) = tx
            .client_get(id, true)
            .await
            .map_err(|e| not_found(e, "client"))?;
        check(&row)?;
        let renamed = input.name.as_ref().is_some_and(|n| *n != row.name);
        merge_client(&mut row, &mut resources, input, &catalogue)?;
        guard_self(actor, id, Some((&row, &resources)))?;
        if let Some(owner) = row.owner_account.as_deref().filter(|_| renamed) {
            if tx.owned_name_taken(owner, &row.name).await? {
                return Err(name_taken());
            }
        }
        row.updated_at = now;
        let client = NewClient { row, resources };
        let owned = client.row.owner_account.is_some();
        tx.client_update(&client).await.map_err(|e| match e {
            StoreError::Conflict(_) if owned => name_taken(),
            e => e.into(),
        })?;
        tx.audit(&actor.entry("client.update", id, detail), now)
            .await?;
        self.finish(tx, "client", id).await?;
        Ok(client_view(&client.row, client.resources, Some(&secrets)))
    }

    /// Enables or disables a client.
    pub async fn client_set_enabled(
        &self,
        actor: &Actor,
        id: &str,
        enabled: bool,
    ) -> Result<ClientView, AdminError> {
        self.client_update(
            actor,
            id,
            ClientInput {
                enabled: Some(enabled),
                ..ClientInput::default()
            },
        )
        .await
    }

    /// Deletes a client and its secrets.
    pub async fn client_delete(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        guard_self(actor, id, None)?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        client_delete_in(&mut tx, actor, id, json!({}), now).await?;
        self.finish(tx, "client", id).await
    }
}

/// Refuses a change by which an admin API caller would lock itself out: deleting or disabling the client it is
/// authenticated as, or taking from it the admin resource, the admin scope, the client_credentials grant or a way
/// to present a secret.
fn guard_self(
    actor: &Actor,
    id: &str,
    after: Option<(&ClientRow, &Vec<String>)>,
) -> Result<(), AdminError> {
    if !actor.is_client(id) {
        return Ok(());
    }
    let keeps_access = after.is_some_and(|(row, resources)| {
        let has = |list: &str, item: &str| split_list(list).iter().any(|x| x == item);
        row.enabled
            && resources.iter().any(|r| r == ADMIN_RESOURCE)
            && has(&row.scopes, keyward_core::resource::ADMIN_SCOPE)
            && has(&row.grant_types, GrantType::ClientCredentials.as_str())
            && row.auth_methods != AuthMethod::None.as_str()
    });
    if keeps_access {
        return Ok(());
    }
    Err(lockout())
}

/// The answer to a change that would lock the calling admin client out of the admin API.
pub(crate) fn lockout() -> AdminError {
    AdminError::Conflict(
        "this change would lock the calling admin client out: use another admin client or the CLI"
            .into(),
    )
}

/// The most keys one account may hold (SECURITY.md).
pub const MAX_KEYS_PER_ACCOUNT: usize = 50;

/// The answer to a second key with the same name in one account.
pub(crate) fn name_taken() -> AdminError {
    AdminError::NameTaken
}

fn not_found(e: StoreError, what: &'static str) -> AdminError {
    match e {
        StoreError::NotFound => AdminError::NotFound(what),
        e => e.into(),
    }
}
