//! The console's operations on an account's own API keys: listing, creating within what the platform allows the
//! account (a secret, public keys or a federated credential, each optionally DPoP-bound), rotating, disabling and
//! deleting, and their usage. Every change goes through the admin service (the same code path as the admin API and
//! the CLI); this layer adds the ownership check and the allowance. The other kinds are in `api_keys/kinds.rs`.

mod kinds;

use std::sync::Arc;

use keyward_core::client::{AuthMethod, GrantType};
use keyward_core::console::{KeyRequestError, KeyScopes, check_key_request};
use serde::Serialize;

use super::Actor;
use super::accounts::AccountView;
use super::admin::{Admin, AdminError, ClientInput, ClientView, DurationValue, NewSecret};
use super::{Outcome, Refusal};
use crate::registry::Registry;
use crate::store::{Store, StoreError};

pub use super::admin::MAX_KEYS_PER_ACCOUNT;
pub use kinds::{FederatedForm, KeyKind};

/// An API key as its owner sees it: the client, when a secret last worked, and the environment's name.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// The client behind the key (with its secrets' hints and dates, never their values).
    pub client: ClientView,
    /// The latest use of any of its secrets (recorded to the hour).
    pub last_used_at: Option<i64>,
    /// The resource it is for.
    pub environment: String,
    /// That resource's display name.
    pub environment_name: String,
}

/// A key as asked for in the console's form.
#[derive(Debug, Clone, Default)]
pub struct KeyRequest {
    /// Display name, unique within the account.
    pub name: String,
    /// Resource identifier.
    pub environment: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// How the key proves itself: a secret, public keys or a federated credential.
    pub kind: KeyKind,
    /// Whether every token it gets must be DPoP-bound (RFC 9449 §5.2).
    pub dpop: bool,
}

/// Why a key was not created, by form field.
#[derive(Debug)]
pub enum KeyFormError {
    /// The name is missing or malformed.
    Name(String),
    /// The account already has a key with this name.
    NameTaken,
    /// The environment is not allowed.
    Environment(String),
    /// The scopes are not allowed, or none was chosen.
    Scopes(String),
    /// The public key is missing or cannot be used.
    PublicKey(String),
    /// The federated credential is incomplete or malformed.
    Federated(String),
    /// The account holds the most keys it may.
    TooMany,
    /// Not the form's fault (a resource changed while the form was open, the database failed).
    Admin(AdminError),
}

impl From<AdminError> for KeyFormError {
    fn from(e: AdminError) -> Self {
        KeyFormError::Admin(e)
    }
}

/// What the console's key operations answer instead of doing what they were asked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not one of the account's keys (another account's key, or none).
    #[error("key not found")]
    NotFound,
    /// The key has scopes the account may no longer give, so it stays disabled.
    #[error("This key has scopes your account may no longer give: create a new key instead.")]
    NoLongerAllowed,
    /// The change is not one this key can take (a public key for a secret key): said as a sentence.
    #[error("{0}")]
    WrongKind(&'static str),
    /// Removing this credential would leave the key none to authenticate with: said as a sentence.
    #[error("{0}")]
    LastCredential(&'static str),
    /// What was sent cannot be used (a malformed JWK, a private key, an incomplete credential): a sentence.
    #[error("{0}")]
    Invalid(String),
    /// The admin service refused or failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
}

impl From<StoreError> for KeyError {
    fn from(e: StoreError) -> Self {
        KeyError::Admin(AdminError::Store(e))
    }
}

impl Outcome for KeyError {
    fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::NotFound => Some(Refusal::NotFound),
            Self::NoLongerAllowed | Self::WrongKind(_) | Self::LastCredential(_) => {
                Some(Refusal::Conflict)
            }
            Self::Invalid(_) => Some(Refusal::Invalid),
            Self::Admin(e) => e.refusal(),
        }
    }
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Admin(e) => e.store_error(),
            _ => None,
        }
    }
}

/// An account's own API keys, as its console shows and changes them.
pub struct ApiKeys {
    /// Keys are clients: every change goes through the admin service.
    pub admin: Arc<Admin>,
    /// The keys an account owns.
    pub store: Store,
    /// Resources in memory (an environment's name, what it offers now).
    pub registry: Arc<Registry>,
}

impl ApiKeys {
    /// The keys an account made, newest first.
    pub async fn keys_of(&self, account_id: &str) -> Result<Vec<KeyView>, KeyError> {
        let rows = self.store.clients_owned(account_id).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            // The client may be deleted between the two reads (another tab): it is then simply not listed.
            match self.admin.client_get(&row.id).await {
                Ok(c) => out.push(self.key_view(c)),
                Err(AdminError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    fn key_view(&self, client: ClientView) -> KeyView {
        let last_used_at = client
            .secrets
            .iter()
            .flatten()
            .filter_map(|s| s.last_used_at)
            .max();
        let environment = client
            .default_resource
            .clone()
            .or_else(|| client.resources.first().cloned())
            .unwrap_or_default();
        let environment_name = self
            .registry
            .resources()
            .get(&environment)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| environment.clone());
        KeyView {
            client,
            last_used_at,
            environment,
            environment_name,
        }
    }

    /// One of the account's keys. Another account's key, or none, is the same `not_found`, so ids of other
    /// accounts' keys cannot be probed.
    pub async fn key_of(&self, account_id: &str, client_id: &str) -> Result<KeyView, KeyError> {
        let client = self.admin.client_get(client_id).await?;
        if client.owner_account.as_deref() != Some(account_id) {
            return Err(KeyError::NotFound);
        }
        Ok(self.key_view(client))
    }

    /// Creates a key for the account within its allowance; returns it and, for a secret key, its secret (shown
    /// once). A public-key or federated key authenticates by `private_key_jwt` alone and holds no secret.
    pub async fn key_create(
        &self,
        actor: &Actor,
        account: &AccountView,
        request: KeyRequest,
    ) -> Result<(KeyView, Option<String>), KeyFormError> {
        let name = request.name.trim().to_owned();
        if name.is_empty() {
            return Err(KeyFormError::Name("Enter a name for the key.".into()));
        }
        let mut scopes = request.scopes;
        scopes.sort();
        scopes.dedup();
        check_key_request(&self.key_scopes_now(account), &request.environment, &scopes).map_err(
            |e| match e {
                KeyRequestError::Environment(m) => KeyFormError::Environment(m),
                KeyRequestError::Scopes(m) => KeyFormError::Scopes(m),
            },
        )?;
        let mut input = ClientInput {
            name: Some(name),
            grant_types: Some(vec![GrantType::ClientCredentials.to_string()]),
            resources: Some(vec![request.environment.clone()]),
            default_resource: Some(request.environment),
            scopes: Some(scopes),
            owner_account: Some(account.account_id.clone()),
            dpop_bound_access_tokens: Some(request.dpop),
            ..ClientInput::default()
        };
        let secret_key = matches!(request.kind, KeyKind::Secret);
        match &request.kind {
            KeyKind::Secret => {}
            KeyKind::PublicKey(text) => {
                let keys = kinds::public_keys(text).map_err(KeyFormError::PublicKey)?;
                input.jwks = Some(Some(serde_json::json!({ "keys": keys })));
            }
            KeyKind::Federated(form) => {
                let credential = form
                    .credential("credential-1".into())
                    .map_err(KeyFormError::Federated)?;
                input.federated_credentials = Some(vec![credential]);
            }
        }
        if !secret_key {
            input.token_endpoint_auth_method = Some(AuthMethod::PrivateKeyJwt.to_string());
        }
        let (view, secret) = match self.admin.client_create(actor, input).await {
            Ok(created) => created,
            Err(e) => {
                return Err(match e {
                    AdminError::NameTaken => KeyFormError::NameTaken,
                    AdminError::TooManyKeys => KeyFormError::TooMany,
                    // The admin service's checks of the name come first.
                    AdminError::Invalid(i) if i.field == "name" => {
                        KeyFormError::Name(as_sentence(&i.why))
                    }
                    AdminError::Invalid(i) if i.field == "jwks" => {
                        KeyFormError::PublicKey(as_sentence(&i.why))
                    }
                    // The rules name the credential first (`credential-1: issuer must be…`): the form has one.
                    AdminError::Invalid(i) if i.field == "federated_credentials" => {
                        let named = i.why.split_once(": ").filter(|(n, _)| *n != "name");
                        let why = named.map_or(i.why.as_str(), |(_, w)| w);
                        KeyFormError::Federated(as_sentence(why))
                    }
                    e => KeyFormError::Admin(e),
                });
            }
        };
        // A secret key made here is confidential, so it always has a first secret.
        if secret_key && secret.is_none() {
            return Err(KeyFormError::Admin(AdminError::Internal(anyhow::anyhow!(
                "a confidential key was made without a secret"
            ))));
        }
        Ok((self.key_view(view), secret))
    }

    /// Gives one of the account's keys a new secret (shown once); the older ones stop working after `overlap`
    /// seconds.
    pub async fn key_rotate(
        &self,
        actor: &Actor,
        account_id: &str,
        client_id: &str,
        overlap: i64,
    ) -> Result<NewSecret, KeyError> {
        self.key_of(account_id, client_id).await?;
        Ok(self
            .admin
            .secret_add(actor, client_id, Some(DurationValue::Seconds(overlap)))
            .await?)
    }

    /// What an account may give its keys now: its allowance, less what the resources no longer offer (an
    /// operator may have changed them since the allowance was set).
    pub fn key_scopes_now(&self, account: &AccountView) -> KeyScopes {
        let resources = self.registry.resources();
        account
            .key_scopes
            .clone()
            .into_iter()
            .filter_map(|(r, scopes)| {
                let offered = &resources.get(&r)?.scopes;
                let scopes: Vec<String> =
                    scopes.into_iter().filter(|s| offered.contains(s)).collect();
                (!scopes.is_empty()).then_some((r, scopes))
            })
            .collect()
    }

    /// Enables or disables one of the account's keys. Enabling checks the key against the account's allowance
    /// again: a key whose scopes the account may no longer give stays disabled.
    pub async fn key_set_enabled(
        &self,
        actor: &Actor,
        account: &AccountView,
        client_id: &str,
        enabled: bool,
    ) -> Result<(), KeyError> {
        let key = self.key_of(&account.account_id, client_id).await?;
        let allowed = check_key_request(
            &self.key_scopes_now(account),
            &key.environment,
            &key.client.scopes,
        );
        if enabled && allowed.is_err() {
            return Err(KeyError::NoLongerAllowed);
        }
        self.admin
            .client_set_enabled(actor, client_id, enabled)
            .await?;
        Ok(())
    }

    /// Deletes one of the account's keys.
    pub async fn key_delete(
        &self,
        actor: &Actor,
        account_id: &str,
        client_id: &str,
    ) -> Result<(), KeyError> {
        self.key_of(account_id, client_id).await?;
        Ok(self.admin.client_delete(actor, client_id).await?)
    }
}

/// A reason as a form shows it: capitalised, with a full stop.
fn as_sentence(why: &str) -> String {
    let mut c = why.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect::<String>() + ".",
        None => String::new(),
    }
}
