//! The HTTP surface: routes, and the layers every response passes through (body limit, no-store on OAuth
//! responses, the request log and metrics). Handlers live in `http/*.rs` by surface.

mod admin;
mod alias;
mod detail;
mod discovery;
mod extract;
mod metrics;
mod oauth;
mod observe;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

pub use admin::{OPENAPI, resource_json};
pub use extract::BODY_LIMIT;
pub use metrics::metrics_router;

use crate::app::App;

/// Builds the router: the OAuth endpoints, discovery, health and the admin API, with `pages` (the server-rendered
/// pages, from `web`) under the same layers.
pub fn router(app: App, pages: Router<App>) -> Router {
    let mut oauth = Router::new()
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
        );
    for ep in &app.settings.token_endpoints {
        if let Some(path) = &ep.detail_path {
            let for_get = ep.clone();
            oauth = oauth.route(
                path,
                get(move |State(app): State<App>, req| alias::detail(app, for_get, req)),
            );
        }
        let (for_post, for_other) = (ep.clone(), ep.clone());
        oauth = oauth.route(
            &ep.path,
            post(move |State(app): State<App>, req| alias::token(app, for_post, req))
                .fallback(move |req| alias::post_only(for_other, req)),
        );
    }
    // RFC 6749 §5.1: token responses (and errors) must not be cached.
    let oauth = oauth
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
        .route("/oauth2/token/detail", get(detail::canonical))
        .route("/healthz", get(discovery::healthz))
        .route("/readyz", get(discovery::readyz))
        .merge(pages)
        .nest("/admin/v1", admin::routes())
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(observe::ObserveLayer(app.clone()))
        .with_state(app)
}

/// The span every request to the gateway runs in; its fields appear on the request's log line.
pub(crate) fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %req.method(),
        // Debug formatting quotes and escapes what a client put in the path.
        path = ?req.uri().path(),
        correlation_id = tracing::field::Empty,
    )
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            serde_json::json!({"error": "not_found", "error_description": "no such endpoint"}),
        ),
    )
}
