//! The server-rendered pages: login and logout, the consent screen behind `/oauth2/authorize`, and the console
//! (an account's API keys, usage and authorized apps; the operator's pages). Every page carries the headers
//! SECURITY.md pins, and every form a CSRF token bound to the browser's cookie.

mod authorize;
mod console;
mod pages;
mod reset;
mod second_step;
mod session;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::App;

/// The page routes, with their headers.
pub fn routes() -> Router<App> {
    let pages = Router::new()
        .route(
            "/oauth2/authorize",
            get(authorize::show).post(authorize::decide),
        )
        .route("/login", get(session::login_page).post(session::login))
        .route("/login/forgot", get(reset::forgot_form).post(reset::forgot))
        .route("/login/reset", get(reset::reset_form).post(reset::reset))
        .route(
            "/login/code",
            get(second_step::code_page).post(second_step::code),
        )
        .route("/logout", post(session::logout))
        // The account page of earlier releases is the console's list of authorized apps now.
        .route(
            "/account",
            get(|| async { session::see_other("/console/apps") }),
        )
        .merge(console::routes());
    // SECURITY.md: no framing, no referrer (the authorization request's URL carries state), no caching. Plugins
    // and other origins are shut out by the content security policy; styles and the console's one script come
    // from Keyward alone (no inline script, no inline style). No `form-action`: browsers apply it to the redirect
    // after the consent form, which goes to the app.
    let headers: [(header::HeaderName, &'static str); 6] = [
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; \
             base-uri 'none'",
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
    pages
        .route("/assets/keyward.css", get(stylesheet))
        .route("/assets/console.js", get(console::script))
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
