//! The HTTP surface: routes, and the layers every response passes through (body limit, no-store on OAuth
//! responses, the request log and metrics). Handlers live in `http/*.rs` by surface.

mod admin;
mod detail;
mod discovery;
pub mod error;
mod extract;
mod metrics;
mod oauth;
mod observe;
mod policy;
mod token;
mod xml;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use tower_http::set_header::SetResponseHeaderLayer;

pub use admin::OPENAPI;
pub use extract::BODY_LIMIT;
pub use metrics::metrics_router;

use crate::app::App;
use crate::config::TokenEndpoint;
use policy::TokenPolicy;

/// Builds the router. `/oauth2/token` and every `[[token_endpoint]]` are policies of one token pipeline
/// (`http/token.rs`), each with its token detail path where it has one.
pub fn router(app: App, pages: Router<App>) -> Router {
    let canonical = Arc::new(TokenPolicy::canonical());
    let mut oauth = Router::new()
        .route(&canonical.endpoint.path, token_route(&canonical))
        .route(
            "/oauth2/introspect",
            post(oauth::introspect).fallback(oauth::post_only),
        )
        .route(
            "/oauth2/revoke",
            post(oauth::revoke).fallback(oauth::post_only),
        );
    for ep in &app.settings.token_endpoints {
        let policy = Arc::new(TokenPolicy::configured(TokenEndpoint::clone(ep)));
        if let Some(path) = &policy.endpoint.detail_path {
            oauth = oauth.route(path, detail_route(&policy));
        }
        oauth = oauth.route(&policy.endpoint.path, token_route(&policy));
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
    let mut router = Router::new().merge(oauth);
    // Outside the OAuth routes' layer, as it has always been: the default policy's detail sets its own
    // `Cache-Control` and sends no `Pragma`.
    if let Some(path) = &canonical.endpoint.detail_path {
        router = router.route(path, detail_route(&canonical));
    }
    router
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
        .merge(pages)
        .nest("/admin/v1", admin::routes())
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(observe::ObserveLayer(app.clone()))
        .with_state(app)
}

/// A token endpoint policy's path: `POST` runs the token pipeline, any other method is a 405.
fn token_route(policy: &Arc<TokenPolicy>) -> MethodRouter<App> {
    let (for_post, for_other) = (policy.clone(), policy.clone());
    post(move |State(app): State<App>, req| token::token(app, for_post, req))
        .fallback(move |req| token::post_only(for_other, req))
}

/// A token endpoint policy's detail path: `GET` (and `HEAD`) only.
fn detail_route(policy: &Arc<TokenPolicy>) -> MethodRouter<App> {
    let policy = policy.clone();
    get(move |State(app): State<App>, headers| detail::detail(app, policy, headers))
}

/// `router` with the request log line the edges share (the gateway, the agent): a span per request
/// ([`request_span`]) and one `info` line per answer.
pub(crate) fn logged<S: Clone + Send + Sync + 'static>(router: axum::Router<S>) -> axum::Router<S> {
    router.layer(
        tower_http::trace::TraceLayer::new_for_http()
            .make_span_with(request_span)
            .on_request(())
            .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO)),
    )
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
