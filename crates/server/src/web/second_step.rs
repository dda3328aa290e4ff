//! `/login/code`: the second step of a sign-in for an account with an authenticator app. The password step leaves
//! a short-lived proof of the password in the `keyward_pending` cookie (HttpOnly, five minutes); this page takes the
//! code (or a recovery code) and opens the session.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use keyward_core::form::Params;
use serde::Deserialize;

use super::pages;
use super::session::{
    SESSION_COOKIE, cookie, csrf_ok, csrf_token, forbidden_form, origin_of, safe_next, see_other,
    set_cookie, unavailable, unreadable_form,
};
use crate::app::App;
use crate::service::sessions::{PENDING_TTL, SessionError};

/// The cookie holding the proof of the password between the two steps.
pub(crate) const PENDING_COOKIE: &str = "keyward_pending";

#[derive(Template)]
#[template(path = "login_code.html")]
struct CodePage<'a> {
    error: Option<&'a str>,
    csrf: &'a str,
    next: &'a str,
}

/// Where the browser goes after the code.
#[derive(Debug, Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

fn page(app: &App, pending: &str, status: StatusCode, error: Option<&str>, next: &str) -> Response {
    let csrf = csrf_token(app, &format!("code\0{pending}"));
    pages::render(
        status,
        &CodePage {
            error,
            csrf: &csrf,
            next,
        },
    )
}

/// The answer to a correct password for an account with a second factor: the proof in its cookie, and the way to
/// the code page.
pub(crate) fn to_code_page(app: &App, pending: &str, next: &str) -> Response {
    let mut r = see_other(&format!(
        "/login/code?next={}",
        keyward_core::form::encode_component(next)
    ));
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(app, PENDING_COOKIE, pending, PENDING_TTL),
    );
    r
}

/// `GET /login/code`.
pub(crate) async fn code_page(
    State(app): State<App>,
    parts: Parts,
    Query(q): Query<Next>,
) -> Response {
    let Some(pending) = cookie(&parts.headers, PENDING_COOKIE) else {
        return see_other("/login");
    };
    page(
        &app,
        pending,
        StatusCode::OK,
        None,
        safe_next(q.next.as_deref()),
    )
}

/// `POST /login/code`.
pub(crate) async fn code(State(app): State<App>, parts: Parts, body: Bytes) -> Response {
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return unreadable_form(&e),
    };
    let field = |n: &str| params.single(n).ok().flatten().unwrap_or_default();
    let Some(pending) = cookie(&parts.headers, PENDING_COOKIE) else {
        return see_other("/login");
    };
    if !csrf_ok(
        &app,
        &format!("code\0{pending}"),
        params.single("csrf").ok().flatten(),
    ) {
        return forbidden_form();
    }
    let next = safe_next(Some(field("next")));
    let origin = origin_of(&parts);
    match app
        .sessions
        .second_factor(pending, field("code"), origin)
        .await
    {
        Ok((session, account)) => {
            tracing::info!(account_id = %account.account_id, "signed in with a second factor");
            let mut r = see_other(next);
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(&app, SESSION_COOKIE, &session, app.sessions.session_ttl),
            );
            h.append(header::SET_COOKIE, set_cookie(&app, PENDING_COOKIE, "", 0));
            r
        }
        Err(e @ SessionError::WrongCode) => page(
            &app,
            pending,
            StatusCode::UNAUTHORIZED,
            Some(&e.to_string()),
            next,
        ),
        // An expired or forged proof: back to the password.
        Err(SessionError::Invalid) => see_other("/login"),
        Err(SessionError::Throttled(wait)) => {
            let message = format!("Too many failed sign-ins. Try again in {wait} seconds.");
            let mut r = page(
                &app,
                pending,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&message),
                next,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.max(1)));
            r
        }
        Err(e) => unavailable(e),
    }
}
