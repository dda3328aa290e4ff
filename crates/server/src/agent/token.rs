//! Token mode: `GET /v1/token/NAME` answers the API's current token as `{"access_token", "token_type",
//! "expires_in"}`, never cached, like a cloud instance's metadata service. It needs `Metadata-Flavor: Keyward`:
//! a header a web page cannot send to another origin without a CORS preflight (which the agent never allows),
//! and which a redirected or relayed request does not carry. For a DPoP-bound token (`token_type: DPoP`) the app
//! may name its call (`?htm=GET&htu=https://…`) and gets a proof for it as `dpop` (RFC 9449 §7.1).

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
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
    query: Option<&str>,
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
    let call = match query.map(proof_request).transpose() {
        Ok(call) => call.flatten(),
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let Some(api) = agent.apis.get(name) else {
        return agent.unknown(name);
    };
    match api.source.token().await {
        Ok(token) => issued(&token, call.as_ref()),
        Err(e) => unavailable(name, &e),
    }
}

/// The call a DPoP proof is asked for: `htm` (a method) and `htu` (an absolute http(s) URL), both or neither.
fn proof_request(query: &str) -> Result<Option<(Method, Uri)>, String> {
    let params = keyward_core::form::Params::parse(query.as_bytes())
        .map_err(|e| format!("the query: {}", e.description))?;
    let one = |name| {
        params
            .single(name)
            .map_err(|_| format!("`{name}` is given more than once"))
    };
    let (htm, htu) = match (one("htm")?, one("htu")?) {
        (None, None) => return Ok(None),
        (Some(m), Some(u)) => (m, u),
        _ => return Err("a DPoP proof needs both `htm` (the method) and `htu` (the URL)".into()),
    };
    let method = Method::from_bytes(htm.as_bytes())
        .ok()
        .filter(|m| m.as_str().bytes().all(|b| b.is_ascii_uppercase()))
        .ok_or_else(|| format!("`htm`: `{htm}` is not an HTTP method such as GET"))?;
    let uri: Uri = htu
        .parse()
        .ok()
        .filter(|u: &Uri| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        .ok_or_else(|| "`htu`: not an absolute http:// or https:// URL".to_owned())?;
    Ok(Some((method, uri)))
}

/// Whether a request carries `Metadata-Flavor: Keyward`.
pub(super) fn flavored(headers: &HeaderMap) -> bool {
    headers
        .get(FLAVOR.0)
        .is_some_and(|v| v.as_bytes() == FLAVOR.1.as_bytes())
}

/// The token as an app reads it: `expires_in` is the whole seconds left, never rounded up; `token_type` says
/// `Bearer` or `DPoP`; with a DPoP token and a call named, `dpop` is the proof for that call.
fn issued(token: &AccessToken, call: Option<&(Method, Uri)>) -> Response {
    let mut body = json!({
        "access_token": token.secret(),
        "token_type": token.token_type(),
        "expires_in": token.expires_in().as_secs(),
    });
    if let (Some((method, uri)), true) = (call, token.is_dpop()) {
        let proof = token
            .request_headers(None, method, uri)
            .ok()
            .and_then(|headers| {
                headers
                    .into_iter()
                    .find(|(name, _)| name == keyward_client::DPOP)
                    .and_then(|(_, v)| v.to_str().ok().map(str::to_owned))
            });
        if let Some(proof) = proof {
            body["dpop"] = proof.into();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_asked_for_a_whole_call_or_none() {
        let (m, u) = proof_request("htm=DELETE&htu=https%3A%2F%2Fapi.example.com%2Fo%2F1%3Fx%3D1")
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.as_str(), u.to_string().as_str()),
            ("DELETE", "https://api.example.com/o/1?x=1")
        );
        assert_eq!(proof_request("").unwrap(), None);
        assert_eq!(proof_request("other=1").unwrap(), None);
        for (query, why) in [
            ("htm=GET", "both"),
            ("htu=https%3A%2F%2Fa", "both"),
            ("htm=get&htu=https%3A%2F%2Fa", "`htm`"),
            ("htm=GET&htu=%2Frelative", "`htu`"),
            ("htm=GET&htu=ftp%3A%2F%2Fa", "`htu`"),
            ("htm=GET&htm=POST&htu=https%3A%2F%2Fa", "more than once"),
        ] {
            let e = proof_request(query).unwrap_err();
            assert!(e.contains(why), "{query}: {e}");
        }
    }
}
