//! A client's registration (RFC 6749 §2; its metadata named as in RFC 7591 §2): the typed fields, a change to
//! them, and [`apply`], which checks every rule that ties them together.

use std::fmt;
use std::str::FromStr;

use super::keys::{self, FederatedCredential, KeySettings};
use super::{Catalogue, RegistrationError, check_name};
use crate::client::{AuthMethod, GrantType};
use crate::limit::ClientLimits;
use crate::scope::is_scope_token;

/// The shortest lifetime of a client's own delegated grants (`refresh_token_ttl`): a minute.
pub const MIN_REFRESH_TTL: i64 = 60;
/// The longest lifetime of a client's own delegated grants: ten years.
pub const MAX_REFRESH_TTL: i64 = 10 * 365 * 86_400;
/// The most redirect URIs a client may register (RFC 6749 §3.1.2).
pub const MAX_REDIRECT_URIS: usize = 20;
/// The longest description, in characters.
pub const MAX_DESCRIPTION: usize = 1_000;

/// What a client is registered with: everything an operator or an account holder chooses, nothing the server
/// keeps for itself (its id, instance, times and secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRegistration {
    /// Display name (RFC 7591 §2 `client_name`).
    pub name: String,
    /// Whether it may authenticate.
    pub enabled: bool,
    /// Grant types it may use (RFC 7591 §2 `grant_types`), in the order given.
    pub grant_types: Vec<GrantType>,
    /// How it authenticates at the token endpoint (RFC 7591 §2 `token_endpoint_auth_method`); `[None]` alone is a
    /// public client (RFC 6749 §2.1).
    pub auth_methods: Vec<AuthMethod>,
    /// Identifiers of the resources it may get tokens for (RFC 8707 §2), sorted, without repeats.
    pub resources: Vec<String>,
    /// Scopes it may have (RFC 7591 §2 `scope`), each offered by one of its resources.
    pub scopes: Vec<String>,
    /// The resource used when a request names none; one of `resources`.
    pub default_resource: Option<String>,
    /// Identifiers of the resources it serves as a resource server (it may introspect their tokens).
    pub serves_resources: Vec<String>,
    /// Registered redirect URIs (RFC 6749 §3.1.2, RFC 7591 §2 `redirect_uris`).
    pub redirect_uris: Vec<String>,
    /// What the app does, shown on the consent page; may be empty.
    pub description: String,
    /// Absolute lifetime of its delegated grants, seconds; `None` follows the server.
    pub refresh_token_ttl: Option<i64>,
    /// Its own limits over the server's.
    pub limits: ClientLimits,
    /// The account whose key it is, when an account holder made it (or an operator made it for one); never
    /// changes.
    pub owner_account: Option<String>,
    /// Its public keys, federated credentials and DPoP binding.
    pub keys: KeySettings,
}

impl ClientRegistration {
    /// The defaults of a new client before its fields are applied: enabled, confidential with both secret methods,
    /// `client_credentials`, nothing else.
    pub fn new(owner_account: Option<String>) -> Self {
        ClientRegistration {
            name: String::new(),
            enabled: true,
            grant_types: vec![GrantType::ClientCredentials],
            auth_methods: AuthMethod::ALL.to_vec(),
            resources: Vec::new(),
            scopes: Vec::new(),
            default_resource: None,
            serves_resources: Vec::new(),
            redirect_uris: Vec::new(),
            description: String::new(),
            refresh_token_ttl: None,
            limits: ClientLimits::default(),
            owner_account,
            keys: KeySettings::default(),
        }
    }

    /// Whether it is a public client (RFC 6749 §2.1): `none` is its one method.
    pub fn is_public(&self) -> bool {
        self.auth_methods == [AuthMethod::None]
    }

    /// Its client type (RFC 6749 §2.1).
    pub fn client_type(&self) -> ClientType {
        if self.is_public() {
            ClientType::Public
        } else {
            ClientType::Confidential
        }
    }
}

/// A client type (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientType {
    /// It holds a secret (`client_secret_basic`, `client_secret_post`).
    Confidential,
    /// A browser or mobile app that cannot keep a secret: it authenticates with `none` and may use
    /// authorization_code and refresh_token only.
    Public,
}

impl ClientType {
    /// The admin API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Confidential => "confidential",
            ClientType::Public => "public",
        }
    }
}

impl FromStr for ClientType {
    type Err = RegistrationError;
    fn from_str(s: &str) -> Result<Self, RegistrationError> {
        match s {
            "confidential" => Ok(ClientType::Confidential),
            "public" => Ok(ClientType::Public),
            _ => Err(RegistrationError::invalid(
                "client_type",
                "must be confidential or public",
            )),
        }
    }
}

impl fmt::Display for ClientType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change to a client's registration: each field given replaces the current one, each absent field stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientChange {
    /// Display name.
    pub name: Option<String>,
    /// Whether it may authenticate.
    pub enabled: Option<bool>,
    /// Grant types ([`parse_grant_types`] reads them from their names).
    pub grant_types: Option<Vec<GrantType>>,
    /// Authentication methods, at least one ([`parse_auth_methods`] reads them from their names).
    pub auth_methods: Option<Vec<AuthMethod>>,
    /// Allowed resource identifiers (sorted and de-duplicated when applied).
    pub resources: Option<Vec<String>>,
    /// Allowed scopes.
    pub scopes: Option<Vec<String>>,
    /// The default resource; `Some(None)` clears it.
    pub default_resource: Option<Option<String>>,
    /// Served resources.
    pub serves_resources: Option<Vec<String>>,
    /// `Public` makes `none` its one method; `Confidential` gives a public client both secret methods.
    pub client_type: Option<ClientType>,
    /// Registered redirect URIs.
    pub redirect_uris: Option<Vec<String>>,
    /// The description; `""` clears it.
    pub description: Option<String>,
    /// Absolute lifetime of its delegated grants, seconds; `0` goes back to the server's.
    pub refresh_token_ttl: Option<i64>,
    /// Its own limits (replaces them all; the default goes back to the server's).
    pub limits: Option<ClientLimits>,
    /// Its public keys as a JWK Set (RFC 7591 §2 `jwks`); `Some(None)` removes them. Setting them drops a
    /// `jwks_uri` the change does not name.
    pub jwks: Option<Option<serde_json::Value>>,
    /// Where its keys are published (RFC 7591 §2 `jwks_uri`); `Some(None)` removes it. Setting it drops inline
    /// keys the change does not name.
    pub jwks_uri: Option<Option<String>>,
    /// Its federated credentials (replaces them all).
    pub federated: Option<Vec<FederatedCredential>>,
    /// RFC 9449 §5.2 `dpop_bound_access_tokens`.
    pub dpop_bound_access_tokens: Option<bool>,
}

/// Checks a client identifier an operator chose (RFC 6749 §2.2); generated ones always pass.
pub fn check_id(id: &str) -> Result<(), RegistrationError> {
    crate::client::check_client_id(id).map_err(|m| RegistrationError::invalid("client_id", m))
}

/// Reads grant types from their names (RFC 7591 §2 `grant_types`), refusing the first unknown one.
pub fn parse_grant_types<S: AsRef<str>>(names: &[S]) -> Result<Vec<GrantType>, RegistrationError> {
    names
        .iter()
        .map(|n| {
            n.as_ref()
                .parse()
                .map_err(|m| RegistrationError::invalid("grant_types", m))
        })
        .collect()
}

/// Reads authentication methods from their names (RFC 7591 §2 `token_endpoint_auth_method`), refusing the first
/// unknown one. An empty list is read as given: [`apply`] refuses it.
pub fn parse_auth_methods<S: AsRef<str>>(
    names: &[S],
) -> Result<Vec<AuthMethod>, RegistrationError> {
    names
        .iter()
        .map(|n| {
            n.as_ref()
                .parse()
                .map_err(|m| RegistrationError::invalid("auth_methods", m))
        })
        .collect()
}

/// A new client's registration: `change` applied to [`ClientRegistration::new`]. The name is required.
pub fn create<C: Catalogue + ?Sized>(
    owner_account: Option<String>,
    change: ClientChange,
    catalogue: &C,
) -> Result<ClientRegistration, RegistrationError> {
    if change.name.is_none() {
        return Err(RegistrationError::invalid("name", "required"));
    }
    apply(ClientRegistration::new(owner_account), change, catalogue)
}

fn invalid(field: &str, why: impl Into<String>) -> RegistrationError {
    RegistrationError::invalid(field, why)
}

/// Applies `change` to `current` and checks the result against the rules and the catalogue of resources
/// (RFC 8707): the resources and served resources exist, every scope is offered by one of the client's resources,
/// the default resource is one of them; a public client (RFC 6749 §2.1) uses `none` alone and never
/// client_credentials; authorization_code needs a redirect URI (RFC 6749 §3.1.2), each one checked by
/// [`crate::redirect::check_registration`], at most [`MAX_REDIRECT_URIS`]; refresh_token (RFC 6749 §6) comes with
/// authorization_code. Fields are checked in the order [`ClientChange`] lists them, and the first refusal is
/// returned.
pub fn apply<C: Catalogue + ?Sized>(
    current: ClientRegistration,
    change: ClientChange,
    catalogue: &C,
) -> Result<ClientRegistration, RegistrationError> {
    let mut r = current;
    if let Some(name) = change.name {
        check_name(&name)?;
        r.name = name;
    }
    if let Some(enabled) = change.enabled {
        r.enabled = enabled;
    }
    if let Some(grants) = change.grant_types {
        r.grant_types = grants;
    }
    if let Some(methods) = change.auth_methods {
        if methods.is_empty() {
            return Err(invalid("auth_methods", "at least one is needed"));
        }
        r.auth_methods = methods;
    }
    if let Some(mut resources) = change.resources {
        resources.sort();
        resources.dedup();
        r.resources = resources;
    }
    if let Some(bad) = r.resources.iter().find(|id| !catalogue.has_resource(id)) {
        return Err(invalid(
            "resources",
            format!("no resource has the identifier {bad:?}"),
        ));
    }
    if let Some(scopes) = change.scopes {
        if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(invalid(
                "scopes",
                format!("{bad:?} is not a valid scope token"),
            ));
        }
        r.scopes = scopes;
    }
    if let Some(s) = r
        .scopes
        .iter()
        .find(|s| !r.resources.iter().any(|id| catalogue.offers(id, s)))
    {
        return Err(invalid(
            "scopes",
            format!("{s:?} is not offered by any of the client's resources"),
        ));
    }
    if let Some(default) = change.default_resource {
        r.default_resource = default;
    }
    if r.default_resource
        .as_ref()
        .is_some_and(|d| !r.resources.contains(d))
    {
        return Err(invalid(
            "default_resource",
            "must be one of the client's resources",
        ));
    }
    if let Some(served) = change.serves_resources {
        if let Some(bad) = served.iter().find(|id| !catalogue.has_resource(id)) {
            return Err(invalid(
                "serves_resources",
                format!("no resource has the identifier {bad:?}"),
            ));
        }
        r.serves_resources = served;
    }
    if let Some(limits) = change.limits {
        r.limits = limits;
    }
    match change.client_type {
        Some(ClientType::Public) => r.auth_methods = vec![AuthMethod::None],
        Some(ClientType::Confidential) if r.is_public() => {
            r.auth_methods = AuthMethod::ALL.to_vec();
        }
        Some(ClientType::Confidential) | None => {}
    }
    if r.auth_methods.contains(&AuthMethod::None) && r.auth_methods.len() > 1 {
        return Err(invalid(
            "auth_methods",
            "none (a public client) cannot be combined with secret methods",
        ));
    }
    apply_keys(&mut r.keys, change.jwks, change.jwks_uri, change.federated);
    if let Some(bound) = change.dpop_bound_access_tokens {
        r.keys.dpop_bound_access_tokens = bound;
    }
    keys::check(&r.keys)?;
    if r.auth_methods.contains(&AuthMethod::PrivateKeyJwt) && !r.keys.has_assertion_keys() {
        return Err(invalid(
            "token_endpoint_auth_method",
            "private_key_jwt needs jwks, jwks_uri or federated_credentials to check assertions with",
        ));
    }
    if let Some(uris) = change.redirect_uris {
        if uris.len() > MAX_REDIRECT_URIS {
            return Err(invalid("redirect_uris", "at most 20"));
        }
        for uri in &uris {
            crate::redirect::check_registration(uri).map_err(|m| invalid("redirect_uris", m))?;
        }
        r.redirect_uris = uris;
    }
    if let Some(description) = change.description {
        if description.chars().count() > MAX_DESCRIPTION
            || description.chars().any(char::is_control)
        {
            return Err(invalid(
                "description",
                "at most 1,000 characters with no control characters",
            ));
        }
        r.description = description;
    }
    if let Some(ttl) = change.refresh_token_ttl {
        if ttl < 0 {
            return Err(invalid("refresh_token_ttl", "must not be negative"));
        }
        if ttl != 0 && !(MIN_REFRESH_TTL..=MAX_REFRESH_TTL).contains(&ttl) {
            return Err(invalid(
                "refresh_token_ttl",
                "must be from 60s to 3650d (or 0 for the server default)",
            ));
        }
        r.refresh_token_ttl = (ttl != 0).then_some(ttl);
    }
    let has = |g: GrantType| r.grant_types.contains(&g);
    if r.is_public() && has(GrantType::ClientCredentials) {
        return Err(invalid(
            "grant_types",
            "a public client cannot use client_credentials (it holds no secret)",
        ));
    }
    if has(GrantType::AuthorizationCode) && r.redirect_uris.is_empty() {
        return Err(invalid(
            "redirect_uris",
            "authorization_code needs at least one redirect URI",
        ));
    }
    if has(GrantType::RefreshToken) && !has(GrantType::AuthorizationCode) {
        return Err(invalid(
            "grant_types",
            "refresh_token comes with authorization_code",
        ));
    }
    Ok(r)
}

/// Sets the key sources a change names. Inline keys and a `jwks_uri` exclude each other (RFC 7591 §2), so setting
/// one drops the other unless the change names both (which [`keys::check`] then refuses).
fn apply_keys(
    current: &mut KeySettings,
    jwks: Option<Option<serde_json::Value>>,
    jwks_uri: Option<Option<String>>,
    federated: Option<Vec<FederatedCredential>>,
) {
    match (jwks, jwks_uri) {
        (Some(j), None) => {
            if j.is_some() {
                current.jwks_uri = None;
            }
            current.jwks = j;
        }
        (None, Some(u)) => {
            let u = u.filter(|u| !u.is_empty());
            if u.is_some() {
                current.jwks = None;
            }
            current.jwks_uri = u;
        }
        (Some(j), Some(u)) => {
            current.jwks = j;
            current.jwks_uri = u.filter(|u| !u.is_empty());
        }
        (None, None) => {}
    }
    if let Some(f) = federated {
        current.federated = f;
    }
}

#[cfg(test)]
mod tests;
