//! The OAuth endpoints: token (RFC 6749 §3.2), introspection (RFC 7662), revocation (RFC 7009).
//! Handlers extract, call and render.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::endpoint::Format;

use super::extract::OAuthRequest;
use super::observe::Observed;
use crate::app::App;
use crate::config::Endpoint;
use crate::error::ApiError;
use keyward_core::grant::PartnerCheck;

/// `POST /oauth2/token`.
pub(crate) async fn token(State(app): State<App>, req: OAuthRequest) -> Response {
    handle(&app, req, Endpoint::Token).await
}

/// `POST /oauth2/introspect`.
pub(crate) async fn introspect(State(app): State<App>, req: OAuthRequest) -> Response {
    handle(&app, req, Endpoint::Introspect).await
}

/// `POST /oauth2/revoke`: 200 with an empty body (RFC 7009 §2.2).
pub(crate) async fn revoke(State(app): State<App>, req: OAuthRequest) -> Response {
    handle(&app, req, Endpoint::Revoke).await
}

/// Authenticates the client under `endpoint`'s limits, then runs the endpoint.
async fn handle(app: &App, req: OAuthRequest, endpoint: Endpoint) -> Response {
    let grant = match endpoint {
        Endpoint::Token => req.params.single("grant_type").ok().flatten(),
        _ => None,
    };
    let mut seen = Observed::new(endpoint.name(), grant);
    let result = async {
        let client = app
            .issuer
            .authenticate(
                req.credentials.as_ref(),
                req.challenge,
                &req.source,
                endpoint,
            )
            .await?;
        seen.client_id = Some(client.client.id.clone());
        Ok(match endpoint {
            Endpoint::Token => Json(
                app.issuer
                    .token(&client, &req.params, PartnerCheck::None)
                    .await?,
            )
            .into_response(),
            Endpoint::Introspect => {
                Json(app.issuer.introspect(&client, &req.params).await?).into_response()
            }
            Endpoint::Revoke => {
                app.issuer.revoke(&client, &req.params).await?;
                StatusCode::OK.into_response()
            }
        })
    }
    .await;
    answer(seen, result)
}

/// Renders a handler's result with what the request log and metrics need to know of it.
fn answer<T: IntoResponse>(seen: Observed, result: Result<T, ApiError>) -> Response {
    let outcome = result.as_ref().map(|_| ()).map_err(|e| e.code());
    let mut response = result.into_response();
    seen.attach(outcome, &mut response);
    response
}

/// Any other method on an OAuth endpoint: 405 with `Allow: POST`, in the same JSON error shape.
pub(crate) async fn post_only() -> Response {
    method_not_allowed(Format::Json)
}

/// 405 with `Allow: POST`, rendered in `format`.
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
