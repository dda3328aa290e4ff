//! Clients (API keys): who may ask for tokens, with which grant types, authentication methods, resources and
//! scopes. Secrets are not here: the server checks them, and core only sees the outcome.

use std::fmt;
use std::str::FromStr;

use crate::scope::ScopeSet;

/// The prefix reserved for account subjects, so a client's `sub` can never equal a person's (RFC 9068 §5).
pub const ACCOUNT_SUBJECT_PREFIX: &str = "acct_";

/// A grant type (RFC 6749 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 6749 §4.1, with PKCE (RFC 7636) required.
    AuthorizationCode,
    /// RFC 6749 §6.
    RefreshToken,
}

impl GrantType {
    /// Grant types the token endpoint serves. `password` and `implicit` are never offered (RFC 9700 §2.4, §2.1.2).
    pub const OFFERED: [GrantType; 3] = [
        GrantType::ClientCredentials,
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
    ];

    /// The `grant_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
        }
    }
}

impl FromStr for GrantType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "client_credentials" => Ok(Self::ClientCredentials),
            "authorization_code" => Ok(Self::AuthorizationCode),
            "refresh_token" => Ok(Self::RefreshToken),
            _ => Err(format!(
                "unsupported grant type {s:?}: Keyward offers client_credentials, authorization_code and \
                 refresh_token"
            )),
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 §2 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// RFC 6749 §2.3.1, HTTP Basic.
    ClientSecretBasic,
    /// RFC 6749 §2.3.1, credentials in the request body (form or JSON).
    ClientSecretPost,
    /// RFC 7591 §2 `none`: a public client (RFC 6749 §2.1) that sends its `client_id` alone.
    None,
    /// RFC 7523 §2.2 / RFC 7591 §2 `private_key_jwt`: a JWT client assertion (RFC 7521 §4.2), signed with one of
    /// the client's own keys or issued by an external issuer the client trusts (workload identity federation).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The secret methods, the default for a new confidential client.
    pub const ALL: [AuthMethod; 2] = [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost];
    /// Every method, secret or not.
    pub const EVERY: [AuthMethod; 4] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::None,
        AuthMethod::PrivateKeyJwt,
    ];

    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

impl FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            "none" => Ok(Self::None),
            "private_key_jwt" => Ok(Self::PrivateKeyJwt),
            _ => Err(format!(
                "unknown auth method {s:?}: use client_secret_basic, client_secret_post, private_key_jwt, or \
                 none (public clients)"
            )),
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client as protocol decisions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client identifier (RFC 6749 §2.2).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Disabled clients cannot authenticate.
    pub enabled: bool,
    /// Grant types it may use.
    pub grant_types: Vec<GrantType>,
    /// Authentication methods it may use.
    pub auth_methods: Vec<AuthMethod>,
    /// Identifiers of the resources it may get tokens for.
    pub resources: Vec<String>,
    /// Scopes it may have; on a resource it gets the intersection with that resource's catalogue.
    pub scopes: ScopeSet,
    /// The resource used when a request names none.
    pub default_resource: Option<String>,
    /// Identifiers of resources this client serves as a resource server: it may introspect their tokens.
    pub serves_resources: Vec<String>,
    /// Registered redirect URIs (RFC 6749 §3.1.2), compared by exact string (the port aside for `http` on a
    /// loopback IP literal: `redirect::is_registered`).
    pub redirect_uris: Vec<String>,
    /// What the app does, shown on the consent page.
    pub description: String,
    /// Absolute lifetime of its delegated grants (refresh tokens), seconds; `None` is the server default.
    pub refresh_token_ttl: Option<i64>,
}

impl Client {
    /// RFC 6749 §2.1: a public client holds no secret and authenticates with `none` alone.
    pub fn is_public(&self) -> bool {
        self.auth_methods == [AuthMethod::None]
    }
}

/// Checks a client identifier chosen by an operator (generated ones always pass): 1 to 255 characters, no
/// control character, not in the account subject namespace.
pub fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.chars().count() > 255 {
        return Err("client_id must be 1 to 255 characters".into());
    }
    if id.chars().any(char::is_control) {
        return Err("client_id must not contain control characters".into());
    }
    if id.starts_with(ACCOUNT_SUBJECT_PREFIX) {
        return Err(format!(
            "client_id must not start with {ACCOUNT_SUBJECT_PREFIX:?}, reserved for accounts"
        ));
    }
    Ok(())
}

/// The resources a new client is allowed when its registration names none, so that no client is made that can
/// never get a token: none for a resource server (it introspects, it needs no token), else the deployment's
/// configured default, else the one resource there is. With several and no default, or none at all, the
/// registration is refused with a message that names what to do. `catalogue` holds every resource's identifier;
/// the admin API's own resource never counts.
pub fn resources_by_default(
    serves_resources: bool,
    configured: Option<&str>,
    catalogue: &[&str],
) -> Result<Vec<String>, String> {
    if serves_resources {
        return Ok(Vec::new());
    }
    if let Some(d) = configured {
        return if catalogue.contains(&d) {
            Ok(vec![d.to_owned()])
        } else {
            Err(format!(
                "resources: none named, and the default_client_resource {d:?} is not a resource; name one"
            ))
        };
    }
    let mut apis: Vec<&str> = catalogue
        .iter()
        .copied()
        .filter(|r| *r != crate::resource::ADMIN_RESOURCE)
        .collect();
    apis.sort_unstable();
    match apis.as_slice() {
        [only] => Ok(vec![(*only).to_owned()]),
        [] => Err(
            "resources: there is no resource (API) yet, so this client could get no token; create one first \
             (keyward resources create, or POST /admin/v1/resources)"
                .into(),
        ),
        several => Err(format!(
            "resources: name the resources this client may get tokens for, one or more of: {}",
            several.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_when_none_are_named() {
        let admin = crate::resource::ADMIN_RESOURCE;
        assert_eq!(
            resources_by_default(false, None, &[admin, "api"]).unwrap(),
            ["api"]
        );
        assert_eq!(
            resources_by_default(true, None, &[admin, "api"]).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            resources_by_default(false, Some("b"), &[admin, "a", "b"]).unwrap(),
            ["b"]
        );
        let several = resources_by_default(false, None, &[admin, "b", "a"]).unwrap_err();
        assert!(several.contains("one or more of: a, b"), "{several}");
        let none = resources_by_default(false, None, &[admin]).unwrap_err();
        assert!(none.contains("no resource"), "{none}");
        assert!(resources_by_default(false, Some("gone"), &[admin, "a"]).is_err());
    }

    #[test]
    fn client_ids() {
        assert!(check_client_id("id:with %+ été").is_ok());
        assert!(check_client_id("").is_err());
        assert!(check_client_id("a\nb").is_err());
        assert!(check_client_id("acct_123").is_err());
        assert!(check_client_id(&"x".repeat(256)).is_err());
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(
            "client_credentials".parse::<GrantType>().unwrap(),
            GrantType::ClientCredentials
        );
        assert!("password".parse::<GrantType>().is_err());
        for m in AuthMethod::EVERY {
            assert_eq!(m.as_str().parse::<AuthMethod>().unwrap(), m);
        }
    }
}
