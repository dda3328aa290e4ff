//! The OAuth endpoints: token (RFC 6749 §3.2), introspection (RFC 7662), revocation (RFC 7009).
//! Handlers extract, call and render.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use keyward_core::endpoint::Format;
use keyward_core::introspect::Introspection;

use super::extract::OAuthRequest;
use crate::app::App;
use crate::error::ApiError;
use crate::issuer::{PartnerCheck, TokenResponse};

/// `POST /oauth2/token`.
pub(crate) async fn token(
    State(app): State<Arc<App>>,
    req: OAuthRequest,
) -> Result<Json<TokenResponse>, ApiError> {
    let client = app
        .authenticate(req.credentials.as_ref(), req.challenge)
        .await?;
    app.token(&client, &req.params, PartnerCheck::None)
        .await
        .map(Json)
}

/// `POST /oauth2/introspect`.
pub(crate) async fn introspect(
    State(app): State<Arc<App>>,
    req: OAuthRequest,
) -> Result<Json<Introspection>, ApiError> {
    let client = app
        .authenticate(req.credentials.as_ref(), req.challenge)
        .await?;
    app.introspect(&client, &req.params).await.map(Json)
}

/// `POST /oauth2/revoke`: 200 with an empty body (RFC 7009 §2.2).
pub(crate) async fn revoke(
    State(app): State<Arc<App>>,
    req: OAuthRequest,
) -> Result<StatusCode, ApiError> {
    let client = app
        .authenticate(req.credentials.as_ref(), req.challenge)
        .await?;
    app.revoke(&client, &req.params)
        .await
        .map(|()| StatusCode::OK)
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
