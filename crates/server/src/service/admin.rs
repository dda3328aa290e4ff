//! The admin operations, shared by the admin API and the CLI (one code path): clients and their secrets,
//! resources, signing keys and the audit log. Every change is checked, written in one transaction with its audit
//! entry and change-feed entry, then applied to this process's memory at once.

use std::collections::HashMap;
use std::sync::Arc;

use keyward_core::client::{AuthMethod, GrantType};
use keyward_core::limit::ClientLimits;
use keyward_core::registration::client as registration;
use keyward_core::registration::{ClientChange, FederatedCredential, RegistrationError};
use keyward_core::resource::ADMIN_RESOURCE;
use serde::{Deserialize, Serialize};
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
mod keys;
mod platform;
mod resources;
mod secrets;
mod usage;
mod view;

pub use error::AdminError;
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

/// Fields of a client, for create (all optional but `name`) and for update (only those given change).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    /// An operator-chosen id (create only); generated when absent.
    pub client_id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Whether it may authenticate.
    pub enabled: Option<bool>,
    /// Grant types (default `client_credentials`).
    pub grant_types: Option<Vec<String>>,
    /// Auth methods (default both secret methods).
    pub auth_methods: Option<Vec<String>>,
    /// RFC 7591 §2: the one method it authenticates with (`client_secret_basic`, `client_secret_post`,
    /// `private_key_jwt`, `none`); the same as `auth_methods` with one name, for tools that speak RFC 7591.
    pub token_endpoint_auth_method: Option<String>,
    /// RFC 7591 §2: its public keys as a JWK Set, for `private_key_jwt`; `null` removes them.
    #[serde(default, deserialize_with = "present")]
    pub jwks: Option<Option<serde_json::Value>>,
    /// RFC 7591 §2: the HTTPS URL of its JWK Set; `null` or `""` removes it.
    #[serde(default, deserialize_with = "present")]
    pub jwks_uri: Option<Option<String>>,
    /// External issuers whose tokens authenticate it (workload identity federation); replaces the list.
    pub federated_credentials: Option<Vec<FederatedCredential>>,
    /// RFC 9449 §5.2: every access token it gets must be DPoP-bound.
    pub dpop_bound_access_tokens: Option<bool>,
    /// Allowed resource identifiers.
    pub resources: Option<Vec<String>>,
    /// Allowed scopes.
    pub scopes: Option<Vec<String>>,
    /// Default resource; `""` clears it.
    pub default_resource: Option<String>,
    /// Resources it serves (may introspect their tokens).
    pub serves_resources: Option<Vec<String>>,
    /// `confidential` (the default: it holds a secret) or `public` (RFC 6749 §2.1: a browser or mobile app that
    /// cannot keep one; it authenticates with `none` and may use authorization_code and refresh_token only).
    pub client_type: Option<String>,
    /// Registered redirect URIs (RFC 6749 §3.1.2), needed for authorization_code.
    pub redirect_uris: Option<Vec<String>>,
    /// What the app does, shown on the consent page; `""` clears it.
    pub description: Option<String>,
    /// Absolute lifetime of its delegated grants (default: the server's `refresh_token_ttl`); `0` clears it.
    pub refresh_token_ttl: Option<DurationValue>,
    /// The account the key belongs to (create only): it appears in that account's console, and names are unique
    /// per account.
    pub owner_account: Option<String>,
    /// Its own limits, over the server's: `{"token": "10/s", "introspect": "off", "tokens_per_hour": 1000}`. On
    /// update the object replaces the one before; `{}` goes back to the server's limits.
    pub limits: Option<ClientLimits>,
}

/// Reads a member that may be `null`: absent is `None`, `null` is `Some(None)` (remove), a value `Some(Some(v))`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The admin API's answer to a registration the rules refuse: 400, in the rule's words.
fn refused(e: RegistrationError) -> AdminError {
    e.into()
}

/// The change `input` asks for, its names and durations read (`client_id` and `owner_account` are not part of it).
fn client_change(input: ClientInput) -> Result<ClientChange, AdminError> {
    let auth_methods =
        match (input.auth_methods, input.token_endpoint_auth_method) {
            (Some(_), Some(_)) => {
                return Err(AdminError::invalid(
                    "token_endpoint_auth_method: give it or auth_methods, not both",
                ));
            }
            (Some(list), None) => Some(registration::parse_auth_methods(&list)),
            (None, Some(one)) => Some(registration::parse_auth_methods(&[one]).map_err(|e| {
                RegistrationError::invalid("token_endpoint_auth_method", e.to_string())
            })),
            (None, None) => None,
        }
        .transpose()
        .map_err(refused)?;
    let jwks = input
        .jwks
        .map(|j| j.map(keys::normalize_jwks).transpose())
        .transpose()?;
    Ok(ClientChange {
        name: input.name,
        enabled: input.enabled,
        grant_types: input
            .grant_types
            .as_deref()
            .map(registration::parse_grant_types)
            .transpose()
            .map_err(refused)?,
        auth_methods,
        resources: input.resources,
        scopes: input.scopes,
        default_resource: input.default_resource.map(|d| (!d.is_empty()).then_some(d)),
        serves_resources: input.serves_resources,
        client_type: input
            .client_type
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(refused)?,
        redirect_uris: input.redirect_uris,
        description: input.description,
        refresh_token_ttl: input
            .refresh_token_ttl
            .map(|t| t.raw_seconds("refresh_token_ttl"))
            .transpose()
            .map_err(refused)?,
        limits: input.limits,
        jwks,
        jwks_uri: input.jwks_uri,
        federated: input.federated_credentials,
        dpop_bound_access_tokens: input.dpop_bound_access_tokens,
    })
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

/// What an update asked for, for the audit log.
#[derive(Serialize)]
struct InputDetail {
    fields: Vec<&'static str>,
}

impl From<&ClientInput> for InputDetail {
    fn from(i: &ClientInput) -> Self {
        let mut fields = Vec::new();
        let mut add = |set: bool, name| {
            if set {
                fields.push(name)
            }
        };
        add(i.name.is_some(), "name");
        add(i.enabled.is_some(), "enabled");
        add(i.grant_types.is_some(), "grant_types");
        add(i.auth_methods.is_some(), "auth_methods");
        add(i.resources.is_some(), "resources");
        add(i.scopes.is_some(), "scopes");
        add(i.default_resource.is_some(), "default_resource");
        add(i.serves_resources.is_some(), "serves_resources");
        add(i.client_type.is_some(), "client_type");
        add(i.redirect_uris.is_some(), "redirect_uris");
        add(i.description.is_some(), "description");
        add(i.refresh_token_ttl.is_some(), "refresh_token_ttl");
        add(i.owner_account.is_some(), "owner_account");
        add(i.limits.is_some(), "limits");
        add(
            i.token_endpoint_auth_method.is_some(),
            "token_endpoint_auth_method",
        );
        add(i.jwks.is_some(), "jwks");
        add(i.jwks_uri.is_some(), "jwks_uri");
        add(i.federated_credentials.is_some(), "federated_credentials");
        add(
            i.dpop_bound_access_tokens.is_some(),
            "dpop_bound_access_tokens",
        );
        InputDetail { fields }
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
