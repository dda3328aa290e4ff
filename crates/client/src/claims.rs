//! What a verification yields: the token's claims, or why the request's token was not accepted (each reason an
//! RFC 6750 §3.1 or RFC 9449 §7.1 answer). Shared by the verifier, its cache, introspection and the tower layer.

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
    /// RFC 9449 §7.1: a token refused on a request that used the `DPoP` scheme (expired, forged, not bound to a
    /// key, …): 401 `invalid_token` with a `DPoP` challenge.
    #[error("{0}")]
    DpopToken(Cow<'static, str>),
    /// RFC 9449 §7.1: the `DPoP` proof is missing, malformed, replayed, or does not match the request, the token
    /// (`ath`) or the token's key (`cnf.jkt`): 401 `invalid_dpop_proof` with a `DPoP` challenge.
    #[error("{0}")]
    DpopProof(Cow<'static, str>),
    /// RFC 9449 §7.2: a token bound to a key presented as a bearer token: 401 `invalid_token`, with a `DPoP` and a
    /// `Bearer` challenge.
    #[error("the token is bound to a key: present it with the DPoP scheme and a proof")]
    BoundAsBearer,
    /// A valid DPoP-bound token without a scope the route needs: 403 `insufficient_scope` with a `DPoP` challenge.
    #[error("the token lacks scope {0}")]
    DpopScope(String),
    /// The issuer's keys (or its introspection endpoint) cannot be reached and none are cached: 503.
    #[error("the token service is unreachable")]
    Unavailable,
}
