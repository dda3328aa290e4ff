//! The server-rendered pages of delegated access: login and logout, the consent screen behind
//! `/oauth2/authorize`, and the account page where a person sees and revokes the apps they authorized. Every page
//! carries the headers SECURITY.md pins, and every form a CSRF token bound to the browser's cookie.

mod authorize;
mod pages;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::App;

/// The page routes, with their headers.
pub fn routes() -> Router<Arc<App>> {
    let pages = Router::new()
        .route(
            "/oauth2/authorize",
            get(authorize::show).post(authorize::decide),
        )
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/account", get(session::account))
        .route("/account/revoke", post(session::revoke));
    // SECURITY.md: no framing, no referrer (the authorization request's URL carries state), no caching. Scripts,
    // plugins and other origins are shut out by the content security policy; styles come from Keyward alone.
    let headers: [(header::HeaderName, &'static str); 6] = [
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::PRAGMA, "no-cache"),
    ];
    let pages = headers.into_iter().fold(pages, |r, (name, value)| {
        r.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ))
    });
    pages.route("/assets/keyward.css", get(stylesheet))
}

/// The one stylesheet, compiled into the binary.
async fn stylesheet() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        include_str!("../assets/keyward.css"),
    )
}
