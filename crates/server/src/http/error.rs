//! `ApiError`: the one error type that becomes an HTTP response. OAuth errors keep their RFC codes; admin errors
//! say what is wrong in JSON; anything unexpected is a bare 500, logged once with its cause chain.

use std::borrow::Cow;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::endpoint::Format;
use keyward_core::{ErrorCode, OAuthError};
use serde_json::json;

use crate::limits::Refusal;
use crate::service::accounts::AccountError;
use crate::service::admin::AdminError;
use crate::service::api_keys::KeyError;
use crate::service::consents::ConsentError;
use crate::service::delegated::DelegatedError;
use crate::service::issuer::IssueError;
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
    /// An error given by status, code and a message that says what is wrong: the admin API's errors, and the
    /// OAuth endpoints' 405, 406 and 413, which have no RFC 6749 code of their own.
    #[error("{code}: {message}")]
    Plain {
        /// HTTP status.
        status: StatusCode,
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A rate limit, quota or failed-authentication limit refused the request (429 with `Retry-After`).
    #[error("{}", .0.message())]
    Limited(Refusal),
    /// The database is unreachable or its pool exhausted.
    #[error("database unavailable")]
    Unavailable,
    /// No signing key is active at this node's time: 503 with `Retry-After`, not a 500.
    #[error("no signing key is active")]
    NoSigningKey,
    /// A bug or an unexpected failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// 400 `invalid_request` on the admin API.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::Plain {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: message.into(),
        }
    }
    /// 404 on the admin API.
    pub fn not_found(what: &str) -> Self {
        ApiError::Plain {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("{what} not found"),
        }
    }
    /// The `error` code the answer carries (the `outcome` label of the request metrics).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::OAuth(e, _) | ApiError::Bearer(e) => e.code.as_str(),
            ApiError::NoToken => "invalid_token",
            ApiError::Plain { code, .. } => code,
            ApiError::Limited(_) => ErrorCode::RateLimited.as_str(),
            ApiError::Unavailable | ApiError::NoSigningKey | ApiError::Internal(_) => {
                "server_error"
            }
        }
    }

    /// A signing failure: 503 when no key is active yet, 500 for anything else.
    pub fn signing(e: anyhow::Error) -> Self {
        if e.is::<crate::keys::NoActiveKey>() {
            ApiError::NoSigningKey
        } else {
            ApiError::Internal(e)
        }
    }

    /// A token-endpoint-style error without a challenge.
    pub fn oauth(e: OAuthError) -> Self {
        ApiError::OAuth(e, Challenge::None)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let Some((refusal, message)) = crate::service::store_refusal(&e) {
            return refused(refusal, message);
        }
        match e {
            StoreError::Unavailable(_) => ApiError::Unavailable,
            e => ApiError::Internal(anyhow::Error::new(e).context("database query")),
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

/// An error as any body format renders it: status, `error`, `error_description` and extra headers.
struct Rendered {
    status: StatusCode,
    code: &'static str,
    description: Cow<'static, str>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// `r` with `Retry-After: seconds` (RFC 9110 §10.2.3).
fn retry_after(mut r: Rendered, seconds: u64) -> Rendered {
    r.headers
        .push((header::RETRY_AFTER, HeaderValue::from(seconds)));
    r
}

impl ApiError {
    fn rendered(self) -> Rendered {
        let plain = |status, code, description: Cow<'static, str>| Rendered {
            status,
            code,
            description,
            headers: Vec::new(),
        };
        match self {
            ApiError::OAuth(e, challenge) => {
                let mut r = plain(oauth_status(e.code), e.code.as_str(), e.description);
                if e.code == ErrorCode::InvalidClient && challenge == Challenge::Basic {
                    r.headers.push((
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"keyward\""),
                    ));
                }
                r
            }
            ApiError::Bearer(e) => {
                let scope = if e.code == ErrorCode::InsufficientScope {
                    ", scope=\"keyward:admin\""
                } else {
                    ""
                };
                let value = format!(
                    "Bearer realm=\"keyward\", error=\"{}\"{scope}",
                    e.code.as_str()
                );
                let mut r = plain(oauth_status(e.code), e.code.as_str(), e.description);
                if let Ok(v) = HeaderValue::from_str(&value) {
                    r.headers.push((header::WWW_AUTHENTICATE, v));
                }
                r
            }
            ApiError::NoToken => {
                let mut r = plain(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "a bearer token is required".into(),
                );
                r.headers.push((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"keyward\""),
                ));
                r
            }
            ApiError::Plain {
                status,
                code,
                message,
            } => plain(status, code, message.into()),
            ApiError::Limited(refusal) => retry_after(
                plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited.as_str(),
                    refusal.message().into(),
                ),
                refusal.retry_after,
            ),
            ApiError::Unavailable => retry_after(
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    "the database is unavailable; retry shortly".into(),
                ),
                2,
            ),
            ApiError::NoSigningKey => {
                tracing::warn!("a token was refused: no signing key is active at this node's time");
                retry_after(
                    plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "server_error",
                        "no signing key is active yet; retry shortly".into(),
                    ),
                    5,
                )
            }
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal error".into(),
                )
            }
        }
    }

    /// Renders the error in `format`: RFC 6749 §5.2 JSON, or the same members in XML where an endpoint offers it.
    pub fn render(self, format: Format) -> Response {
        let r = self.rendered();
        let mut response = if format.is_xml() {
            super::xml::response(r.status, format, super::xml::error(r.code, &r.description))
        } else {
            (
                r.status,
                axum::Json(json!({ "error": r.code, "error_description": r.description })),
            )
                .into_response()
        };
        response.headers_mut().extend(r.headers);
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render(Format::Json)
    }
}

/// A refusal as the admin API answers it: 400 `invalid_request`, 404 `not_found` or 409 `conflict`, with the
/// service's words.
fn refused(refusal: crate::service::Refusal, message: String) -> ApiError {
    use crate::service::Refusal as R;
    let (status, code) = match refusal {
        R::Invalid => (StatusCode::BAD_REQUEST, "invalid_request"),
        R::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        R::Conflict => (StatusCode::CONFLICT, "conflict"),
    };
    ApiError::Plain {
        status,
        code,
        message,
    }
}

/// A service's refusal; its failures (store, anything else) are mapped by each `From` before this.
fn from_outcome(e: impl crate::service::Outcome) -> ApiError {
    match e.refusal() {
        Some(r) => refused(r, e.to_string()),
        None => ApiError::Internal(anyhow::anyhow!("{e}")),
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Store(e) => e.into(),
            AdminError::Internal(e) => ApiError::Internal(e),
            e => from_outcome(e),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Store(e) => e.into(),
            AccountError::Internal(e) => ApiError::Internal(e),
            AccountError::Admin(e) => e.into(),
            e => from_outcome(e),
        }
    }
}

impl From<crate::service::resets::ResetError> for ApiError {
    fn from(e: crate::service::resets::ResetError) -> Self {
        use crate::service::resets::ResetError;
        match e {
            ResetError::Store(e) => e.into(),
            ResetError::Internal(e) => ApiError::Internal(e),
            e => from_outcome(e),
        }
    }
}

impl From<ConsentError> for ApiError {
    fn from(e: ConsentError) -> Self {
        match e {
            ConsentError::Store(e) => e.into(),
            ConsentError::Internal(e) => ApiError::Internal(e),
            e => from_outcome(e),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Admin(e) => e.into(),
            e => from_outcome(e),
        }
    }
}

impl ApiError {
    /// An issuer's error at an OAuth endpoint whose request challenged as `challenge` (RFC 6749 §5.2: a 401
    /// `invalid_client` carries `WWW-Authenticate: Basic` when the client used Basic).
    pub fn issue(e: IssueError, challenge: Challenge) -> Self {
        match e {
            IssueError::OAuth(e) => ApiError::OAuth(e, challenge),
            IssueError::InvalidToken(e) => ApiError::Bearer(e),
            IssueError::Limited(r) => ApiError::Limited(r),
            IssueError::Stale => ApiError::Unavailable,
            IssueError::NoSigningKey => ApiError::NoSigningKey,
            IssueError::Store(e) => e.into(),
            IssueError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        ApiError::issue(e, Challenge::None)
    }
}

impl From<DelegatedError> for ApiError {
    fn from(e: DelegatedError) -> Self {
        IssueError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use keyward_core::ErrorCode;

    use super::*;
    use crate::service::Invalid;

    async fn answer(e: impl Into<ApiError>) -> (StatusCode, serde_json::Value, HeaderMap) {
        let r = e.into().into_response();
        let status = r.status();
        let headers = r.headers().clone();
        let body = to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap(), headers)
    }

    use axum::http::HeaderMap;

    #[tokio::test]
    async fn each_service_refusal_has_its_status_code_and_words() {
        let cases: Vec<(ApiError, StatusCode, &str, &str)> = vec![
            (
                AdminError::Invalid(Invalid::new("name", "required")).into(),
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "name: required",
            ),
            (
                AdminError::NotFound("client").into(),
                StatusCode::NOT_FOUND,
                "not_found",
                "client not found",
            ),
            (
                AdminError::NameTaken.into(),
                StatusCode::CONFLICT,
                "conflict",
                "name: this account already has a key with this name",
            ),
            (
                AdminError::Store(StoreError::NotFound).into(),
                StatusCode::NOT_FOUND,
                "not_found",
                "the resource not found",
            ),
            (
                AccountError::Taken.into(),
                StatusCode::CONFLICT,
                "conflict",
                "an account with this email or partner_id exists",
            ),
            (
                AccountError::NotFound.into(),
                StatusCode::NOT_FOUND,
                "not_found",
                "account not found",
            ),
            (
                ConsentError::NotFound("grant").into(),
                StatusCode::NOT_FOUND,
                "not_found",
                "grant not found",
            ),
            (
                KeyError::NotFound.into(),
                StatusCode::NOT_FOUND,
                "not_found",
                "key not found",
            ),
            (
                KeyError::Admin(AdminError::TooManyKeys).into(),
                StatusCode::CONFLICT,
                "conflict",
                "owner_account: the account holds the most keys it may (50)",
            ),
        ];
        for (e, status, code, message) in cases {
            let (s, body, _) = answer(e).await;
            assert_eq!(
                (
                    s,
                    body["error"].as_str(),
                    body["error_description"].as_str()
                ),
                (status, Some(code), Some(message))
            );
        }
    }

    #[tokio::test]
    async fn issuer_errors_keep_rfc_codes_and_the_requests_challenge() {
        let e = IssueError::OAuth(OAuthError::invalid_client());
        let (s, body, headers) = answer(ApiError::issue(e, Challenge::Basic)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "invalid_client");
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
        let e = IssueError::OAuth(OAuthError::invalid_client());
        let (_, _, headers) = answer(ApiError::issue(e, Challenge::None)).await;
        assert!(!headers.contains_key(header::WWW_AUTHENTICATE));
        let (s, body, _) = answer(IssueError::InvalidToken(OAuthError::new(
            ErrorCode::InvalidToken,
            "token revoked",
        )))
        .await;
        assert_eq!(
            (s, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token"))
        );
        let (s, _, headers) = answer(IssueError::Stale).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.contains_key(header::RETRY_AFTER));
        let (s, _, _) = answer(DelegatedError::NoSigningKey).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        let (s, body, _) = answer(DelegatedError::OAuth(OAuthError::invalid_grant("spent"))).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
    }
}
