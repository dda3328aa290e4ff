//! The OAuth endpoints besides the token endpoint: introspection (RFC 7662) and revocation (RFC 7009), which are
//! not token endpoint policies; and the answer helpers every OAuth handler shares, the token pipeline
//! (`http/token.rs`) included. Handlers extract (`OAuthRequest`), call and answer.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::endpoint::Format;

use super::extract::OAuthRequest;
use super::observe::Observed;
use crate::app::App;
use crate::config::Endpoint;
use crate::http::error::ApiError;

/// `POST /oauth2/introspect` (RFC 7662 §2).
pub(crate) async fn introspect(State(app): State<App>, req: OAuthRequest) -> Response {
    handle(&app, req, Endpoint::Introspect).await
}

/// `POST /oauth2/revoke`: 200 with an empty body (RFC 7009 §2.2).
pub(crate) async fn revoke(State(app): State<App>, req: OAuthRequest) -> Response {
    handle(&app, req, Endpoint::Revoke).await
}

/// Authenticates the client under `endpoint`'s limits (RFC 6749 §2.3, RFC 7662 §2.1, RFC 7009 §2.1), then runs
/// the endpoint.
async fn handle(app: &App, req: OAuthRequest, endpoint: Endpoint) -> Response {
    let mut seen = Observed::new(endpoint.name(), None);
    let result = async {
        let client = app
            .issuer
            .authenticate(req.credentials.as_ref(), &req.source, endpoint)
            .await
            .map_err(|e| ApiError::issue(e, req.challenge))?;
        seen.client_id = Some(client.client.id.clone());
        Ok(if endpoint == Endpoint::Revoke {
            app.issuer.revoke(&client, &req.params).await?;
            StatusCode::OK.into_response()
        } else {
            Json(app.issuer.introspect(&client, &req.params).await?).into_response()
        })
    }
    .await;
    answer(Some(seen), result, Format::Json)
}

/// A handler's answer: the response, or the error rendered in `format` (RFC 6749 §5.2 in JSON, or XML where the
/// endpoint offers it); with what the request log and metrics need to know of it when the request was described.
pub(crate) fn answer(
    seen: Option<Observed>,
    result: Result<Response, ApiError>,
    format: Format,
) -> Response {
    let outcome = result.as_ref().map(|_| ()).map_err(ApiError::code);
    let mut response = result.unwrap_or_else(|e| e.render(format));
    if let Some(seen) = seen {
        seen.attach(outcome, &mut response);
    }
    response
}

/// Any other method on introspection or revocation: 405 with `Allow: POST`, in the same JSON error shape.
pub(crate) async fn post_only() -> Response {
    method_not_allowed(Format::Json)
}

/// 405 with `Allow: POST` (RFC 9110 §15.5.6), rendered in `format`.
pub(crate) fn method_not_allowed(format: Format) -> Response {
    let mut r = ApiError::Plain {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "invalid_request",
        message: "this endpoint accepts POST only".into(),
    }
    .render(format);
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}
