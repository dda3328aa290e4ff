//! A client as the admin API, the CLI and the console show it: its registration in lists of names, its type, its
//! limits, its public keys and federated credentials, and its secrets' hints and dates when asked for (never
//! their values).

use keyward_core::client::AuthMethod;
use keyward_core::limit::ClientLimits;
use keyward_core::registration::{FederatedCredential, KeySettings};
use serde::Serialize;

use super::{SecretView, secret_view};
use crate::store::{ClientRow, SecretRow, split_list};

/// A client as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    /// Client id.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Whether it may authenticate.
    pub enabled: bool,
    /// Grant types.
    pub grant_types: Vec<String>,
    /// Auth methods.
    pub auth_methods: Vec<String>,
    /// RFC 7591 §2: its first auth method (the one it uses, for tools that know one per client).
    pub token_endpoint_auth_method: String,
    /// Allowed resources.
    pub resources: Vec<String>,
    /// Allowed scopes.
    pub scopes: Vec<String>,
    /// Default resource.
    pub default_resource: Option<String>,
    /// Served resources.
    pub serves_resources: Vec<String>,
    /// `confidential` or `public`.
    pub client_type: &'static str,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Shown on the consent page.
    pub description: String,
    /// Absolute lifetime of its grants in seconds, when it has its own.
    pub refresh_token_ttl: Option<i64>,
    /// The account it belongs to, when an account holder made it in the console (or an operator made it for one).
    pub owner_account: Option<String>,
    /// Its own limits (absent members follow the server's).
    pub limits: ClientLimits,
    /// RFC 7591 §2: its public keys, for `private_key_jwt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// RFC 7591 §2: where its public keys are published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// External issuers whose tokens authenticate it.
    pub federated_credentials: Vec<FederatedCredential>,
    /// RFC 9449 §5.2: whether its access tokens are always DPoP-bound.
    pub dpop_bound_access_tokens: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Secrets, when shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<SecretView>>,
}

pub(super) fn client_view(
    row: &ClientRow,
    resources: Vec<String>,
    secrets: Option<&[SecretRow]>,
) -> ClientView {
    // Checked on write; a document a newer version wrote and this one cannot read shows as none.
    let keys: KeySettings = serde_json::from_str(&row.key_settings).unwrap_or_default();
    let auth_methods = split_list(&row.auth_methods);
    ClientView {
        client_id: row.id.clone(),
        name: row.name.clone(),
        enabled: row.enabled,
        grant_types: split_list(&row.grant_types),
        token_endpoint_auth_method: auth_methods.first().cloned().unwrap_or_default(),
        auth_methods,
        resources,
        scopes: split_list(&row.scopes),
        default_resource: row.default_resource.clone(),
        serves_resources: split_list(&row.serves_resources),
        client_type: if row.auth_methods == AuthMethod::None.as_str() {
            "public"
        } else {
            "confidential"
        },
        redirect_uris: split_list(&row.redirect_uris),
        description: row.description.clone(),
        refresh_token_ttl: row.refresh_token_ttl,
        owner_account: row.owner_account.clone(),
        limits: serde_json::from_str(&row.limits).unwrap_or_default(),
        jwks: keys.jwks,
        jwks_uri: keys.jwks_uri,
        federated_credentials: keys.federated,
        dpop_bound_access_tokens: keys.dpop_bound_access_tokens,
        created_at: row.created_at,
        updated_at: row.updated_at,
        secrets: secrets.map(|s| s.iter().map(secret_view).collect()),
    }
}
