//! What the admin API and the CLI send to change a client (`ClientInput`, RFC 7591 names where they exist), read
//! into the core's `ClientChange`, and what an update names for the audit log.

use keyward_core::limit::ClientLimits;
use keyward_core::registration::client as registration;
use keyward_core::registration::{ClientChange, FederatedCredential, RegistrationError};
use serde::{Deserialize, Serialize};

use super::{AdminError, DurationValue, keys};

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
pub(super) fn refused(e: RegistrationError) -> AdminError {
    e.into()
}

/// The change `input` asks for, its names and durations read (`client_id` and `owner_account` are not part of it).
pub(super) fn client_change(input: ClientInput) -> Result<ClientChange, AdminError> {
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

/// What an update asked for, for the audit log.
#[derive(Serialize)]
pub(super) struct InputDetail {
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
