//! What a verification yields: the token's claims, or why the request's token was not accepted (each reason an
//! RFC 6750 §3.1 answer). Shared by the verifier, its cache, introspection and the tower layer.

use std::borrow::Cow;

use keyward_core::jwt::AccessTokenClaims;

/// The verified claims of an access token.
pub type Claims = AccessTokenClaims;

/// Why a request's token was not accepted; each maps to an RFC 6750 §3.1 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No token at all: 401 with a bare `Bearer` challenge.
    #[error("a bearer token is required")]
    Missing,
    /// A malformed request (two tokens, a token in the query, a broken header): 400 `invalid_request`.
    #[error("{0}")]
    Malformed(&'static str),
    /// A token that does not verify: 401 `invalid_token`.
    #[error("{0}")]
    Invalid(Cow<'static, str>),
    /// A valid token without a scope the route needs: 403 `insufficient_scope`, naming the scopes.
    #[error("the token lacks scope {0}")]
    InsufficientScope(String),
    /// The issuer's keys (or its introspection endpoint) cannot be reached and none are cached: 503.
    #[error("the token service is unreachable")]
    Unavailable,
}
