//! Token introspection decisions (RFC 7662): who may see a token's claims, and the response members.

use serde::Serialize;

use crate::client::Client;
use crate::jwt::{AccessTokenClaims, Confirmation};

/// RFC 7662 §2.2 response. An inactive token is `{"active":false}` with no other member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Introspection {
    /// Whether the token is active.
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Details {
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    client_id: String,
    token_type: &'static str,
    exp: i64,
    iat: i64,
    sub: String,
    aud: String,
    iss: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    /// RFC 9449 §6.2: the key a DPoP-bound token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation>,
}

/// What introspection says of an active refresh token (RFC 7662 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshDetails {
    /// The scopes of its grant.
    pub scope: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The account that authorized the grant.
    pub sub: String,
    /// The resource its access tokens are for.
    pub aud: String,
    /// The issuer.
    pub iss: String,
    /// When it was issued (Unix seconds).
    pub iat: i64,
    /// When it stops working: the grant's end, or sooner when an idle timeout applies.
    pub exp: i64,
}

impl Introspection {
    /// `{"active":false}`.
    pub fn inactive() -> Self {
        Self {
            active: false,
            details: None,
        }
    }

    /// An active token's members (RFC 7662 §2.2); a DPoP-bound one is `token_type` `DPoP` with its `cnf` (RFC 9449
    /// §6.2).
    pub fn active(claims: AccessTokenClaims) -> Self {
        Self {
            active: true,
            details: Some(Details {
                scope: claims.scope,
                client_id: claims.client_id,
                token_type: if claims.cnf.is_some() {
                    "DPoP"
                } else {
                    "Bearer"
                },
                exp: claims.exp,
                iat: claims.iat,
                sub: claims.sub,
                aud: claims.aud,
                iss: claims.iss,
                jti: Some(claims.jti),
                cnf: claims.cnf,
            }),
        }
    }

    /// An active refresh token's members, `token_type` `refresh_token` (RFC 7662 §2.2).
    pub fn refresh(d: RefreshDetails) -> Self {
        Self {
            active: true,
            details: Some(Details {
                scope: (!d.scope.is_empty()).then_some(d.scope),
                client_id: d.client_id,
                token_type: "refresh_token",
                exp: d.exp,
                iat: d.iat,
                sub: d.sub,
                aud: d.aud,
                iss: d.iss,
                jti: None,
                cnf: None,
            }),
        }
    }
}

/// RFC 7662 §2.1, SECURITY.md: a refresh token is shown only to the client it was issued to (a resource server
/// never sees one, nor holds one).
pub fn may_see_refresh(caller: &Client, issued_to: &str) -> bool {
    caller.id == issued_to
}

/// SECURITY.md: a caller sees a token only if it was issued the token, or serves the token's audience.
pub fn may_see(caller: &Client, claims: &AccessTokenClaims) -> bool {
    claims.client_id == caller.id || caller.serves_resources.contains(&claims.aud)
}

/// RFC 7009 §2.1: a token may be revoked by the client it was issued to, or by a resource server of its audience.
pub fn may_revoke(caller: &Client, claims: &AccessTokenClaims) -> bool {
    may_see(caller, claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_has_no_other_member() {
        assert_eq!(
            serde_json::to_string(&Introspection::inactive()).unwrap(),
            r#"{"active":false}"#
        );
    }
}
