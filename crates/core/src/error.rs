//! The OAuth error codes Keyward answers with, and the error type every core decision returns.
//! Rendering (status codes, headers) belongs to the server's `ApiError`; this only names the code.

use std::borrow::Cow;
use std::fmt;

/// An error code as it appears on the wire in the `error` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// RFC 6749 §5.2: a missing, repeated or malformed parameter.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed.
    InvalidClient,
    /// RFC 6749 §5.2: the grant (code, refresh token) is invalid.
    InvalidGrant,
    /// RFC 6749 §5.2: the client may not use this grant type.
    UnauthorizedClient,
    /// RFC 6749 §5.2: the server does not offer this grant type.
    UnsupportedGrantType,
    /// RFC 6749 §5.2: the scope is unknown, malformed or beyond what the client may have.
    InvalidScope,
    /// RFC 8707 §2: the requested resource (audience) is unknown or not allowed.
    InvalidTarget,
    /// RFC 6750 §3.1: the access token is invalid.
    InvalidToken,
    /// RFC 6750 §3.1: the token lacks a scope the request needs.
    InsufficientScope,
    /// RFC 7009 §2.2.1: the server cannot revoke this type of token.
    UnsupportedTokenType,
    /// RFC 6749 §4.1.2.1: the authorization server does not support this `response_type`.
    UnsupportedResponseType,
    /// RFC 6749 §4.1.2.1: the resource owner denied the request.
    AccessDenied,
    /// Keyward: a limit was hit (no RFC code exists; clients key on status 429).
    RateLimited,
    /// RFC 6749 §5.2 (via §4.1.2.1): an unexpected condition on the server.
    ServerError,
    /// RFC 9449 §5: the DPoP proof of a token request is missing where required, or invalid.
    InvalidDpopProof,
    /// RFC 9449 §8: the server requires a nonce in the DPoP proof (sent in `DPoP-Nonce`).
    UseDpopNonce,
}

impl ErrorCode {
    /// The exact wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::AccessDenied => "access_denied",
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol error: a code and a human-readable description that never echoes raw input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// The wire code.
    pub code: ErrorCode,
    /// Sent as `error_description`; written by Keyward, never copied from the request.
    pub description: Cow<'static, str>,
}

impl OAuthError {
    /// An error with the given code and description.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }
    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }
    /// `invalid_client`. The description is the same for every cause so that an unknown client and a wrong
    /// secret cannot be told apart (SECURITY.md).
    pub fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "client authentication failed")
    }
    /// `invalid_grant` with a description.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }
    /// `invalid_scope` with a description.
    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }
    /// `invalid_target` with a description.
    pub fn invalid_target(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidTarget, description)
    }
}
