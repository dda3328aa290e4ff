//! `ApiError`: the one error type that becomes an HTTP response. OAuth errors keep their RFC codes; admin errors
//! say what is wrong in JSON; anything unexpected is a bare 500, logged once with its cause chain.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::{ErrorCode, OAuthError};
use serde_json::json;

use crate::store::StoreError;

/// How a 401 challenges the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No `WWW-Authenticate` header.
    None,
    /// `WWW-Authenticate: Basic` (RFC 6749 §5.2: the client used the Authorization header).
    Basic,
}

/// An error answered to a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// RFC 6749 §5.2 error at the token, introspection or revocation endpoint.
    #[error("{0}")]
    OAuth(OAuthError, Challenge),
    /// RFC 6750 §3.1 error of a protected resource (the admin API).
    #[error("{0}")]
    Bearer(OAuthError),
    /// A request with no bearer token at all (RFC 6750 §3.1: no error code).
    #[error("no bearer token")]
    NoToken,
    /// An admin API error: status, code and a message that says what is wrong.
    #[error("{code}: {message}")]
    Admin {
        /// HTTP status.
        status: StatusCode,
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The database is unreachable or its pool exhausted.
    #[error("database unavailable")]
    Unavailable,
    /// A bug or an unexpected failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// 400 `invalid_request` on the admin API.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::Admin {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: message.into(),
        }
    }
    /// 404 on the admin API.
    pub fn not_found(what: &str) -> Self {
        ApiError::Admin {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("{what} not found"),
        }
    }
    /// A token-endpoint-style error without a challenge.
    pub fn oauth(e: OAuthError) -> Self {
        ApiError::OAuth(e, Challenge::None)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("the resource"),
            StoreError::Conflict(m) => ApiError::Admin {
                status: StatusCode::CONFLICT,
                code: "conflict",
                message: m.to_owned(),
            },
            StoreError::Unavailable(_) => ApiError::Unavailable,
            StoreError::Db(e) => {
                ApiError::Internal(anyhow::Error::new(e).context("database query"))
            }
        }
    }
}

fn oauth_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn body(code: &str, description: &str) -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "error": code, "error_description": description }))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::OAuth(e, challenge) => {
                let mut r =
                    (oauth_status(e.code), body(e.code.as_str(), &e.description)).into_response();
                if e.code == ErrorCode::InvalidClient && challenge == Challenge::Basic {
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"keyward\""),
                    );
                }
                r
            }
            ApiError::Bearer(e) => {
                let mut r =
                    (oauth_status(e.code), body(e.code.as_str(), &e.description)).into_response();
                let scope = if e.code == ErrorCode::InsufficientScope {
                    ", scope=\"keyward:admin\""
                } else {
                    ""
                };
                let value = format!(
                    "Bearer realm=\"keyward\", error=\"{}\"{scope}",
                    e.code.as_str()
                );
                if let Ok(v) = HeaderValue::from_str(&value) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                r
            }
            ApiError::NoToken => {
                let mut r = (
                    StatusCode::UNAUTHORIZED,
                    body("invalid_token", "a bearer token is required"),
                )
                    .into_response();
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"keyward\""),
                );
                r
            }
            ApiError::Admin {
                status,
                code,
                message,
            } => (status, body(code, &message)).into_response(),
            ApiError::Unavailable => {
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    body("server_error", "the database is unavailable; retry shortly"),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
                r
            }
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    body("server_error", "internal error"),
                )
                    .into_response()
            }
        }
    }
}
