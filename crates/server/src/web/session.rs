//! Login sessions in the browser: the cookies, the CSRF tokens bound to them, the login and logout forms, and
//! the account page (the apps a person authorized, each revocable).
//!
//! Two cookies, both `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` when the issuer is https:
//! `keyward_session` holds a session id (the database keeps its digest), `keyward_login` a random value that the
//! login form's CSRF token is bound to before there is a session. A CSRF token is an HMAC under the server's
//! pepper of what it is bound to, so it needs no storage and is checked in constant time.

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyward_core::form::{Params, encode_component};

use super::pages;
use crate::app::App;
use crate::crypto::{digests_equal, new_token};
use crate::service::Outcome;
use crate::service::accounts::AccountView;
use crate::service::sessions::{SessionError, Sessions, SignIn};
use crate::store::SessionOrigin;
use crate::web::pages::Said;

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "keyward_session";
/// The pre-login cookie the login form's CSRF token is bound to.
pub(crate) const LOGIN_COOKIE: &str = "keyward_login";

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
pub(crate) fn set_cookie(app: &App, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if app.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    // Values are base64url tokens Keyward made, always a valid header.
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The CSRF token of a form bound to `binding` (a cookie's value, with what kind of cookie it is).
pub(crate) fn csrf_token(app: &App, binding: &str) -> String {
    B64.encode(app.master.digest(&format!("keyward-csrf\0{binding}")))
}

pub(crate) fn csrf_ok(app: &App, binding: &str, presented: Option<&str>) -> bool {
    let expected = csrf_token(app, binding);
    presented.is_some_and(|p| digests_equal(p.as_bytes(), expected.as_bytes()))
}

/// The signed-in account and its session cookie's value, when there is a live session.
pub(crate) async fn signed_in(
    app: &App,
    headers: &HeaderMap,
) -> Result<Option<(String, AccountView)>, Response> {
    let Some(value) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    match app.sessions.session(value).await {
        Ok(Some(account)) => Ok(Some((value.to_owned(), account))),
        Ok(None) => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

/// The CSRF token of the forms of a signed-in page.
pub(crate) fn session_csrf(app: &App, session: &str) -> String {
    csrf_token(app, &format!("session\0{session}"))
}

/// Whether a POST from a signed-in page carries its session's CSRF token.
pub(crate) fn session_csrf_ok(app: &App, session: &str, params: &Params) -> bool {
    csrf_ok(
        app,
        &format!("session\0{session}"),
        params.single("csrf").ok().flatten(),
    )
}

/// A page for a failure of the server or the database; a refusal the service states (text the database cannot
/// store, say) is shown with its words.
pub(crate) fn unavailable(e: impl Outcome) -> Response {
    match pages::said(&e) {
        Said::Refused(r, message) => pages::refused(r, "This request cannot be served", &message),
        Said::Unavailable => pages::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again in a moment",
            "The service is briefly unavailable.",
            "",
        ),
        Said::Failed => {
            tracing::error!(error = %e, "a page request failed");
            pages::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The request could not be completed.",
                "",
            )
        }
    }
}

/// The answer to a form whose CSRF token is missing or wrong.
/// 400 for a form whose text cannot be read (a broken `%` escape, bytes that are not UTF-8, a control character
/// such as NUL): nothing changes, and the page says which of those it was.
pub(crate) fn unreadable_form(e: &keyward_core::OAuthError) -> Response {
    pages::error(
        StatusCode::BAD_REQUEST,
        "This form cannot be read",
        &format!("Nothing was changed: {}.", e.description),
        "invalid_request",
    )
}

pub(crate) fn forbidden_form() -> Response {
    pages::error(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "Go back, reload the page and try again.",
        "invalid_request",
    )
}

/// 303 See Other to a path of ours or a client's redirect URI.
pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => pages::error(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The address is not valid.",
            "invalid_request",
        ),
    }
}

/// Where a new session comes from, for the account's list of its sessions: the browser's `User-Agent` and the
/// peer's address.
pub(crate) fn origin_of(parts: &Parts) -> SessionOrigin {
    let address = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    Sessions::origin(agent, &address)
}

/// Where a login may return to: an authorization request, or a console page. Anything else (another site,
/// `//evil`, a path with a control character or a backslash) goes to the console, so `next` is never an open
/// redirect.
pub(crate) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/oauth2/authorize?") => n,
        Some(n)
            if (n == "/console" || n.starts_with("/console/") || n.starts_with("/console?"))
                && n.chars().all(|c| c.is_ascii_graphic())
                && !n.contains("//")
                && !n.contains('\\') =>
        {
            n
        }
        _ => "/console",
    }
}

/// `/login?next=…` for a path of ours.
pub(crate) fn login_url(next: &str) -> String {
    format!("/login?next={}", encode_component(next))
}

fn login_form(
    app: &App,
    login_cookie: &str,
    status: StatusCode,
    error: Option<&str>,
    email: &str,
    next: &str,
) -> Response {
    let csrf = csrf_token(app, &format!("login\0{login_cookie}"));
    pages::render(
        status,
        &pages::Login {
            error,
            email,
            csrf: &csrf,
            next,
        },
    )
}

/// `GET /login`.
pub(crate) async fn login_page(State(app): State<App>, headers: HeaderMap, uri: Uri) -> Response {
    let query = match Params::parse(uri.query().unwrap_or_default().as_bytes()) {
        Ok(q) => q,
        Err(e) => return unreadable_form(&e),
    };
    let next = safe_next(query.single("next").ok().flatten()).to_owned();
    let (login_cookie, fresh) = match cookie(&headers, LOGIN_COOKIE) {
        Some(c) => (c.to_owned(), false),
        None => (new_token("kwl_"), true),
    };
    let mut r = login_form(&app, &login_cookie, StatusCode::OK, None, "", &next);
    if fresh {
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&app, LOGIN_COOKIE, &login_cookie, 3_600),
        );
    }
    r
}

/// `POST /login`: checks the CSRF token, then the email and password (throttled per account).
pub(crate) async fn login(State(app): State<App>, parts: Parts, body: Bytes) -> Response {
    let headers = &parts.headers;
    let origin = origin_of(&parts);
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return unreadable_form(&e),
    };
    let field = |n: &str| params.single(n).ok().flatten().unwrap_or_default();
    let Some(login_cookie) = cookie(headers, LOGIN_COOKIE) else {
        return forbidden_form();
    };
    if !csrf_ok(
        &app,
        &format!("login\0{login_cookie}"),
        params.single("csrf").ok().flatten(),
    ) {
        return forbidden_form();
    }
    let next = safe_next(Some(field("next")));
    let email = field("email");
    match app.sessions.login(email, field("password"), origin).await {
        Ok(SignIn::SecondFactor(pending)) => super::second_step::to_code_page(&app, &pending, next),
        Ok(SignIn::Session(session, account)) => {
            tracing::info!(account_id = %account.account_id, "signed in");
            let mut r = see_other(next);
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(&app, SESSION_COOKIE, &session, app.sessions.session_ttl),
            );
            h.append(header::SET_COOKIE, set_cookie(&app, LOGIN_COOKIE, "", 0));
            r
        }
        Err(SessionError::Invalid) => login_form(
            &app,
            login_cookie,
            StatusCode::UNAUTHORIZED,
            Some("Wrong email or password."),
            email,
            next,
        ),
        Err(SessionError::Throttled(wait)) => {
            let message = format!("Too many failed sign-ins. Try again in {wait} seconds.");
            let mut r = login_form(
                &app,
                login_cookie,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&message),
                email,
                next,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.max(1)));
            r
        }
        Err(e) => unavailable(e),
    }
}

/// `POST /logout`: ends the session (the form's CSRF token is bound to it).
pub(crate) async fn logout(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return unreadable_form(&e),
    };
    let Some(session) = cookie(&headers, SESSION_COOKIE) else {
        return see_other("/login");
    };
    if !session_csrf_ok(&app, session, &params) {
        return forbidden_form();
    }
    if let Err(e) = app.sessions.logout(session).await {
        return unavailable(e);
    }
    let mut r = see_other("/login");
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&app, SESSION_COOKIE, "", 0));
    r
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_an_authorization_request_or_a_console_page() {
        for ok in [
            "/console",
            "/console/keys/abc",
            "/console?x=1",
            "/oauth2/authorize?client_id=a",
        ] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/console//evil.example",
            "/console/\\evil",
            "/console/\u{7f}",
            "/console/a b",
            "/consoleX",
            "/account",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/console");
    }
}
