//! The password reset pages: `/login/forgot` (ask for a link by email; the same answer for every address) and
//! `/login/reset` (the link's page: a new password). Forms carry a CSRF token bound to the pre-login cookie.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use keyward_core::form::Params;

use super::pages;
use super::session::{
    LOGIN_COOKIE, SESSION_COOKIE, cookie, csrf_ok, csrf_token, forbidden_form, set_cookie,
    unavailable, unreadable_form,
};
use crate::app::App;
use crate::crypto::new_token;
use crate::service::resets::{RESET_TTL_SECONDS, ResetError};

/// The peer's address, for the audit log (empty when the connection has none, as in-process tests).
pub(crate) struct Peer(String);

impl FromRequestParts<App> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &App) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_default(),
        ))
    }
}

/// The pre-login cookie's value, made (and set on the answer) when the browser has none.
fn login_cookie(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, LOGIN_COOKIE) {
        Some(c) => (c.to_owned(), false),
        None => (new_token("kwl_"), true),
    }
}

fn forgot_page(app: &App, binding: &str, status: StatusCode, sent: bool) -> Response {
    let csrf = csrf_token(app, &format!("forgot\0{binding}"));
    pages::render(
        status,
        &pages::Forgot {
            email_configured: app.resets.email_configured(),
            sent,
            minutes: RESET_TTL_SECONDS / 60,
            csrf: &csrf,
        },
    )
}

/// `GET /login/forgot`.
pub(crate) async fn forgot_form(State(app): State<App>, headers: HeaderMap) -> Response {
    let (binding, fresh) = login_cookie(&headers);
    let mut r = forgot_page(&app, &binding, StatusCode::OK, false);
    if fresh {
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&app, LOGIN_COOKIE, &binding, 3_600),
        );
    }
    r
}

/// `POST /login/forgot`: the same page whether or not the address has an account (and after the same time).
pub(crate) async fn forgot(
    State(app): State<App>,
    Peer(source): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return unreadable_form(&e),
    };
    let Some(binding) = cookie(&headers, LOGIN_COOKIE) else {
        return forbidden_form();
    };
    if !csrf_ok(
        &app,
        &format!("forgot\0{binding}"),
        params.single("csrf").ok().flatten(),
    ) {
        return forbidden_form();
    }
    let email = params.single("email").ok().flatten().unwrap_or_default();
    match app.resets.request(email, &source).await {
        Ok(()) => forgot_page(&app, binding, StatusCode::OK, true),
        Err(ResetError::NoEmail) => {
            forgot_page(&app, binding, StatusCode::SERVICE_UNAVAILABLE, false)
        }
        Err(e) => unavailable(e),
    }
}

fn reset_page(
    app: &App,
    binding: &str,
    token: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let csrf = csrf_token(app, &format!("reset\0{binding}"));
    pages::render(
        status,
        &pages::Reset {
            done: false,
            error,
            csrf: &csrf,
            token,
        },
    )
}

fn bad_link() -> Response {
    pages::error(
        StatusCode::BAD_REQUEST,
        "This reset link is not valid",
        "It was used already, has expired, or was replaced by a newer one. Ask for a new link.",
        "invalid_request",
    )
}

/// `GET /login/reset?token=…`: the form when the link is live (reading it does not spend it).
pub(crate) async fn reset_form(State(app): State<App>, headers: HeaderMap, uri: Uri) -> Response {
    let query = match Params::parse(uri.query().unwrap_or_default().as_bytes()) {
        Ok(q) => q,
        Err(e) => return unreadable_form(&e),
    };
    let token = query.single("token").ok().flatten().unwrap_or_default();
    match app.resets.link_live(token).await {
        Ok(true) => {}
        Ok(false) => return bad_link(),
        Err(e) => return unavailable(e),
    }
    let (binding, fresh) = login_cookie(&headers);
    let mut r = reset_page(&app, &binding, token, StatusCode::OK, None);
    if fresh {
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&app, LOGIN_COOKIE, &binding, 3_600),
        );
    }
    r
}

/// `POST /login/reset`: spends the link, sets the password, ends every session (this browser's included).
pub(crate) async fn reset(
    State(app): State<App>,
    Peer(source): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return unreadable_form(&e),
    };
    let field = |n: &str| params.single(n).ok().flatten().unwrap_or_default();
    let Some(binding) = cookie(&headers, LOGIN_COOKIE) else {
        return forbidden_form();
    };
    if !csrf_ok(
        &app,
        &format!("reset\0{binding}"),
        params.single("csrf").ok().flatten(),
    ) {
        return forbidden_form();
    }
    let token = field("token");
    match app.resets.complete(token, field("password"), &source).await {
        Ok(()) => {
            let mut r = pages::render(
                StatusCode::OK,
                &pages::Reset {
                    done: true,
                    error: None,
                    csrf: "",
                    token: "",
                },
            );
            r.headers_mut()
                .append(header::SET_COOKIE, set_cookie(&app, SESSION_COOKIE, "", 0));
            r
        }
        Err(ResetError::Invalid(why)) => {
            reset_page(&app, binding, token, StatusCode::BAD_REQUEST, Some(&why))
        }
        Err(ResetError::BadLink) => bad_link(),
        Err(e) => unavailable(e),
    }
}
