//! Token mode: `GET /v1/token/NAME` answers the API's current token as `{"access_token", "token_type",
//! "expires_in"}`, never cached, like a cloud instance's metadata service. It needs `Metadata-Flavor: Keyward`:
//! a header a web page cannot send to another origin without a CORS preflight (which the agent never allows),
//! and which a redirected or relayed request does not carry.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_client::{AccessToken, TokenError};
use serde_json::json;

use super::{Agent, error};

/// The header token mode requires, and its one accepted value.
const FLAVOR: (&str, &str) = ("metadata-flavor", "Keyward");

/// Answers a token-mode request for `name`.
pub(super) async fn answer(
    agent: &Agent,
    name: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    if !flavored(headers) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "token mode needs the header `Metadata-Flavor: Keyward`",
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "token mode answers GET only",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let Some(api) = agent.apis.get(name) else {
        return agent.unknown(name);
    };
    match api.source.token().await {
        Ok(token) => issued(&token),
        Err(e) => unavailable(name, &e),
    }
}

/// Whether a request carries `Metadata-Flavor: Keyward`.
pub(super) fn flavored(headers: &HeaderMap) -> bool {
    headers
        .get(FLAVOR.0)
        .is_some_and(|v| v.as_bytes() == FLAVOR.1.as_bytes())
}

/// The token as an app reads it: `expires_in` is the whole seconds left, never rounded up.
fn issued(token: &AccessToken) -> Response {
    let body = json!({
        "access_token": token.secret(),
        "token_type": token.token_type(),
        "expires_in": token.expires_in().as_secs(),
    });
    let mut r = (StatusCode::OK, axum::Json(body)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// Why there is no token for `name`, as an answer: the token endpoint refused the credentials (502, naming its
/// error), or no token came in time (503 with `Retry-After`). Proxy mode answers the same.
pub(super) fn unavailable(name: &str, e: &TokenError) -> Response {
    match e {
        TokenError::Refused { status, error, .. } => {
            let mut r = (
                StatusCode::BAD_GATEWAY,
                axum::Json(json!({
                    "error": "token_refused",
                    "error_description": format!("API `{name}`: {e}"),
                    "upstream_error": error,
                    "upstream_status": status,
                })),
            )
                .into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        TokenError::Unavailable { .. } => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                &format!("API `{name}`: {e}"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}
