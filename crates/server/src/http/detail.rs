//! The token detail endpoint, one handler under the token endpoint policies (`http/policy.rs`):
//! `GET /oauth2/token/detail` for the default policy, and a configured endpoint's `detail_path` (Walmart's
//! `GET /v3/token/detail`). For the access token presented, whether it is valid and which scopes it carries,
//! grouped by API category with their access level (`{"Item": "Full Access", "Reports": "View Only"}`), taken
//! from the resource's scope details. The token is checked as introspection checks it (signature, claims, client,
//! denylist); only the token's own holder learns anything, since it must present the token.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use keyward_core::scope::ScopeSet;
use keyward_core::{ErrorCode, OAuthError};
use serde::Serialize;

use super::policy::TokenPolicy;
use crate::app::App;
use crate::config::NamedHeader;
use crate::http::error::ApiError;

/// What the endpoint answers for a valid token.
#[derive(Debug, Serialize)]
pub(crate) struct TokenDetail {
    /// Always `true` (an invalid token gets a 401).
    pub is_valid: bool,
    /// The app the token was issued to.
    pub client_id: String,
    /// The account (delegated tokens) or the client (client_credentials).
    pub subject: String,
    /// The resource.
    pub audience: String,
    /// The scopes, space-delimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expire_at: i64,
    /// Category → access level, for the scopes that have one.
    pub scopes: BTreeMap<String, String>,
}

/// The bearer token of a request: `Authorization: Bearer` (RFC 6750 §2.1), or the policy's own header.
fn presented<'h>(headers: &'h HeaderMap, extra: Option<&NamedHeader>) -> Result<&'h str, ApiError> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| malformed())?;
        return match v.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
                Ok(t.trim())
            }
            _ => Err(ApiError::NoToken),
        };
    }
    match extra.and_then(|h| headers.get(&h.name)) {
        Some(v) => v
            .to_str()
            .map(str::trim)
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(malformed),
        None => Err(ApiError::NoToken),
    }
}

fn malformed() -> ApiError {
    ApiError::Bearer(OAuthError::new(
        ErrorCode::InvalidRequest,
        "malformed access token header",
    ))
}

/// The detail of the token a request presents.
async fn token_detail(
    app: &App,
    headers: &HeaderMap,
    extra: Option<&NamedHeader>,
) -> Result<TokenDetail, ApiError> {
    let claims = app.issuer.verify_token(presented(headers, extra)?).await?;
    let resources = app.memory.registry.resources();
    let scope = ScopeSet::from_tokens(
        claims
            .scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty()),
    );
    let scopes = resources
        .get(&claims.aud)
        .map(|r| r.categories(&scope).into_iter().collect())
        .unwrap_or_default();
    Ok(TokenDetail {
        is_valid: true,
        client_id: claims.client_id,
        subject: claims.sub,
        audience: claims.aud,
        scope: claims.scope,
        issued_at: claims.iat,
        expire_at: claims.exp,
        scopes,
    })
}

/// `GET` on a policy's token detail path: the detail in JSON, or an RFC 6750 §3.1 error, with the policy's
/// finishing headers (correlation echo, `Vary`) and `Cache-Control: no-store` (RFC 9111 §5.2.2.5), which the
/// default policy's path, served outside the OAuth routes' layer, gets from here alone.
pub(crate) async fn detail(app: App, policy: Arc<TokenPolicy>, headers: HeaderMap) -> Response {
    let correlation = policy.correlation(&headers);
    let extra = policy.endpoint.access_token_header.as_ref();
    let r = match token_detail(&app, &headers, extra).await {
        Ok(d) => Json(d).into_response(),
        Err(e) => e.into_response(),
    };
    let mut r = policy.finish(r, correlation);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
