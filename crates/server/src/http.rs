//! The HTTP surface: routes, and the layers every response passes through (body limit, no-store on OAuth
//! responses, request logging). Handlers live in `http/*.rs` by surface.

mod admin;
mod discovery;
mod extract;
mod oauth;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use admin::{OPENAPI, resource_json};
pub use extract::BODY_LIMIT;

use crate::app::App;

/// Builds the router.
pub fn router(app: Arc<App>) -> Router {
    // RFC 6749 §5.1: token responses (and errors) must not be cached.
    let oauth = Router::new()
        .route(
            "/oauth2/token",
            post(oauth::token).fallback(oauth::post_only),
        )
        .route(
            "/oauth2/introspect",
            post(oauth::introspect).fallback(oauth::post_only),
        )
        .route(
            "/oauth2/revoke",
            post(oauth::revoke).fallback(oauth::post_only),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::PRAGMA,
            HeaderValue::from_static("no-cache"),
        ));
    Router::new()
        .merge(oauth)
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::metadata),
        )
        .route("/oauth2/jwks", get(discovery::jwks))
        .route("/healthz", get(discovery::healthz))
        .route("/readyz", get(discovery::readyz))
        .nest("/admin/v1", admin::routes())
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            serde_json::json!({"error": "not_found", "error_description": "no such endpoint"}),
        ),
    )
}
