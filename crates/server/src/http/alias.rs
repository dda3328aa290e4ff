//! Token endpoint aliases (`[[token_endpoint]]`): the canonical token endpoint's logic behind a path with its
//! own manners. Order of checks: `Accept` (406 when nothing offered fits, since no answer could be read), the
//! request's shape (required headers, market, body, credentials), the endpoint's auth methods, client
//! authentication, the grant type the endpoint serves in that market, then the grant itself. Every answer, error
//! or not, is in the negotiated format and echoes the correlation header.

use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::OAuthError;
use keyward_core::endpoint::{Format, negotiate};

use super::extract::OAuthRequest;
use super::observe::{CORRELATION_MAX, Observed, correlation_text};
use crate::app::App;
use crate::config::{Endpoint, NamedHeader, TokenEndpoint};
use crate::error::{ApiError, Challenge};
use keyward_core::grant::{PartnerCheck, TokenResponse};

/// `POST` on an alias path.
pub(crate) async fn token(app: App, ep: Arc<TokenEndpoint>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let correlation = correlation(&ep, &parts.headers);
    let Some(format) = negotiate(accept(&parts.headers).as_deref(), ep.xml) else {
        return finish(&ep, not_acceptable(&ep), correlation);
    };
    let mut seen = Observed::new("token", None);
    let result = issue(&app, &ep, &parts, body, correlation.is_some(), &mut seen).await;
    let outcome = result.as_ref().map(|_| ()).map_err(|e| e.code());
    let mut response = match result {
        Ok(t) if format.is_xml() => {
            crate::error::xml::response(StatusCode::OK, format, crate::error::xml::token(&t))
        }
        Ok(t) => axum::Json(t).into_response(),
        Err(e) => e.render(format),
    };
    seen.attach(outcome, &mut response);
    finish(&ep, response, correlation)
}

/// `GET` on an interface's token detail path: the token detail, in JSON, echoing the correlation header.
pub(crate) async fn detail(app: App, ep: Arc<TokenEndpoint>, req: Request<Body>) -> Response {
    let correlation = correlation(&ep, req.headers());
    let r = match super::detail::detail(&app, req.headers(), ep.access_token_header.as_ref()).await
    {
        Ok(d) => axum::Json(d).into_response(),
        Err(e) => e.into_response(),
    };
    finish(&ep, r, correlation)
}

/// Any other method on an alias path: 405 with `Allow: POST`, in the negotiated format.
pub(crate) async fn post_only(ep: Arc<TokenEndpoint>, req: Request<Body>) -> Response {
    let correlation = correlation(&ep, req.headers());
    let format = negotiate(accept(req.headers()).as_deref(), ep.xml).unwrap_or(Format::Json);
    let r = super::oauth::method_not_allowed(format);
    finish(&ep, r, correlation)
}

async fn issue(
    app: &App,
    ep: &TokenEndpoint,
    parts: &Parts,
    body: Body,
    correlation_ok: bool,
    seen: &mut Observed,
) -> Result<TokenResponse, ApiError> {
    let invalid = |message: String| ApiError::oauth(OAuthError::invalid_request(message));
    if let Some(h) = &ep.correlation_header {
        if matches!(sent(&parts.headers, h), Sent::NotText | Sent::Text(_)) && !correlation_ok {
            return Err(invalid(format!(
                "header {} must be printable ASCII of at most {CORRELATION_MAX} characters",
                h.display
            )));
        }
    }
    for h in &ep.required_headers {
        match sent(&parts.headers, h) {
            Sent::Absent => return Err(invalid(format!("header {} is required", h.display))),
            Sent::NotText => return Err(invalid(format!("header {} is not text", h.display))),
            Sent::Text(_) => {}
        }
    }
    let market = match (&ep.grants.market, &ep.market_header) {
        (Some(rule), Some(h)) => {
            let value = match sent(&parts.headers, h) {
                Sent::Absent => None,
                Sent::Text(t) => Some(t),
                // Not text cannot name a market: answered like any unknown market.
                Sent::NotText => Some(""),
            };
            Some(rule.market(value).map_err(ApiError::oauth)?)
        }
        _ => None,
    };
    let req = OAuthRequest::read(parts, body, &ep.body, app).await?;
    *seen = Observed::new("token", req.params.single("grant_type").ok().flatten());
    if let Some(c) = &req.credentials {
        if !ep.auth_methods.contains(&c.method) {
            let accepted: Vec<&str> = ep.auth_methods.iter().map(|m| m.as_str()).collect();
            return Err(ApiError::OAuth(
                OAuthError::new(
                    keyward_core::ErrorCode::InvalidClient,
                    format!(
                        "this endpoint accepts client authentication by: {}",
                        accepted.join(", ")
                    ),
                ),
                challenge(ep, req.challenge),
            ));
        }
    }
    let client = app
        .issuer
        .authenticate(
            req.credentials.as_ref(),
            challenge(ep, req.challenge),
            &req.source,
            Endpoint::Token,
        )
        .await?;
    seen.client_id = Some(client.client.id.clone());
    let grant_type = req.params.required("grant_type").map_err(ApiError::oauth)?;
    ep.grants
        .check(grant_type, market)
        .map_err(ApiError::oauth)?;
    let partner = match &ep.partner_header {
        None => PartnerCheck::None,
        Some(h) => PartnerCheck::Header {
            name: &h.display,
            value: match sent(&parts.headers, h) {
                Sent::Text(t) => Some(t),
                // Not text cannot equal a partner id; answered like a wrong one.
                Sent::NotText => Some(""),
                Sent::Absent => None,
            },
        },
    };
    app.issuer.token(&client, &req.params, partner).await
}

/// A Basic-only endpoint challenges for Basic even when the request tried something else (RFC 7235 §4.1).
fn challenge(ep: &TokenEndpoint, found: Challenge) -> Challenge {
    use keyward_core::client::AuthMethod;
    if ep.auth_methods == [AuthMethod::ClientSecretBasic] {
        Challenge::Basic
    } else {
        found
    }
}

/// What a request carries in a configured header.
enum Sent<'h> {
    /// Nothing, or only blanks.
    Absent,
    /// Text, trimmed.
    Text(&'h str),
    /// Bytes that are not visible ASCII (RFC 9110 §5.5 obs-text).
    NotText,
}

fn sent<'h>(headers: &'h HeaderMap, h: &NamedHeader) -> Sent<'h> {
    match headers.get(&h.name).map(|v| v.to_str().map(str::trim)) {
        None => Sent::Absent,
        Some(Ok("")) => Sent::Absent,
        Some(Ok(t)) => Sent::Text(t),
        Some(Err(_)) => Sent::NotText,
    }
}

/// Every `Accept` header, joined as RFC 9110 §5.3 allows.
fn accept(headers: &HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// The correlation value when it is safe to echo (the request's log line carries it too: `observe`).
fn correlation(ep: &TokenEndpoint, headers: &HeaderMap) -> Option<HeaderValue> {
    let h = ep.correlation_header.as_ref()?;
    let v = headers.get(&h.name)?;
    correlation_text(v).map(|_| v.clone())
}

fn not_acceptable(ep: &TokenEndpoint) -> Response {
    let offered = if ep.xml {
        "application/json or application/xml"
    } else {
        "application/json"
    };
    ApiError::Plain {
        status: StatusCode::NOT_ACCEPTABLE,
        code: "invalid_request",
        message: format!(
            "this endpoint answers in {offered}, which the Accept header does not allow"
        ),
    }
    .render(Format::Json)
}

fn finish(ep: &TokenEndpoint, mut r: Response, correlation: Option<HeaderValue>) -> Response {
    if let (Some(h), Some(v)) = (&ep.correlation_header, correlation) {
        r.headers_mut().insert(h.name.clone(), v);
    }
    // The answer depends on Accept even without XML: a 406 or not.
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    r
}
