//! The token endpoint (RFC 6749 §3.2) as one pipeline: `POST /oauth2/token` and every `[[token_endpoint]]` path
//! run the same handler, each under its `TokenPolicy` (`http/policy.rs`). Order of checks: `Accept` (406 when
//! nothing offered fits, since no answer could be read), the request's shape (correlation, required and market
//! headers), the body and credentials under the policy's body rules, the policy's auth methods, client
//! authentication, the grant type the policy serves in that market, then the grant itself. Every answer, error or
//! not, is in the negotiated format and carries the policy's finishing headers (correlation echo, `Vary`).

use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use keyward_core::endpoint::Format;

use super::extract::OAuthRequest;
use super::oauth::{answer, method_not_allowed};
use super::observe::Observed;
use super::policy::TokenPolicy;
use crate::app::App;
use crate::config::Endpoint;
use crate::http::error::ApiError;
use crate::service::dpop::ProofHeader;
use keyward_core::grant::TokenResponse;

/// `POST` on a token endpoint's path: a token (RFC 6749 §5.1) or an error (RFC 6749 §5.2), in the format the
/// policy negotiated from `Accept` (RFC 9110 §12.5.1).
pub(crate) async fn token(app: App, policy: Arc<TokenPolicy>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let correlation = policy.correlation(&parts.headers);
    let Some(format) = policy.format(&parts.headers) else {
        return policy.finish(policy.not_acceptable(), correlation);
    };
    let mut seen = policy
        .observes_unread
        .then(|| Observed::new(Endpoint::Token.name(), None));
    let result = issue(
        &app,
        &policy,
        &parts,
        body,
        correlation.is_some(),
        &mut seen,
    )
    .await;
    let mut response = answer(seen, result.map(|t| render(t, format)), format);
    // RFC 9449 §8: every answer carries the nonce to use next, when the server requires them.
    if let Some(nonce) = app.issuer.dpop.nonce(app.clock.now())
        && let Ok(v) = HeaderValue::from_str(&nonce)
    {
        response.headers_mut().insert("dpop-nonce", v);
    }
    policy.finish(response, correlation)
}

/// Any other method on a token endpoint's path: 405 with `Allow: POST` (RFC 9110 §15.5.6), in the negotiated
/// format (JSON when `Accept` allows nothing offered).
pub(crate) async fn post_only(policy: Arc<TokenPolicy>, req: Request<Body>) -> Response {
    let correlation = policy.correlation(req.headers());
    let format = policy.format(req.headers()).unwrap_or(Format::Json);
    policy.finish(method_not_allowed(format), correlation)
}

/// The checks after `Accept`, in order, then the grant. `seen` describes the request from the moment its body is
/// read (or from the start, where the policy observes unread requests).
async fn issue(
    app: &App,
    policy: &TokenPolicy,
    parts: &Parts,
    body: Body,
    correlation_ok: bool,
    seen: &mut Option<Observed>,
) -> Result<TokenResponse, ApiError> {
    let market = policy.check_headers(&parts.headers, correlation_ok)?;
    let req = OAuthRequest::read(parts, body, &policy.endpoint.body, app).await?;
    let seen = seen.insert(Observed::new(
        Endpoint::Token.name(),
        req.params.single("grant_type").ok().flatten(),
    ));
    policy.check_method(&req)?;
    let mut proofs = parts.headers.get_all("dpop").iter();
    let proof = match (proofs.next(), proofs.next()) {
        (None, _) => ProofHeader::Absent,
        (Some(one), None) => one
            .to_str()
            .map_or(ProofHeader::Malformed, ProofHeader::One),
        (Some(_), Some(_)) => ProofHeader::Malformed,
    };
    // RFC 9449 §4.3 item 9: the proof names the URL the client posted to, which is this endpoint's public one.
    // Checked before the client authenticates, so a refused proof spends nothing of the client's.
    let htu = format!("{}{}", app.settings.issuer, policy.endpoint.path);
    let proof = app.issuer.check_proof(proof, &htu)?;
    let client = app
        .issuer
        .authenticate(req.credentials.as_ref(), &req.source, Endpoint::Token)
        .await
        .map_err(|e| ApiError::issue(e, policy.challenge(req.challenge)))?;
    seen.client_id = Some(client.client.id.clone());
    policy.check_grant(&req.params, market)?;
    app.issuer
        .token(&client, &req.params, policy.partner(&parts.headers), proof)
        .await
        .map_err(ApiError::from)
}

/// A token response (RFC 6749 §5.1) in `format`: JSON, or Walmart's `OAuthTokenDTO` where XML was chosen.
fn render(t: TokenResponse, format: Format) -> Response {
    if format.is_xml() {
        super::xml::response(StatusCode::OK, format, super::xml::token(&t))
    } else {
        axum::Json(t).into_response()
    }
}
