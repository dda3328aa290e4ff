//! `/console/account`: the signed-in account's own sign-ins: change its password (the current one needed; every
//! other session ends and this browser gets a new cookie), see where it is signed in (browser, address, when), and
//! sign out one session or all the others.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::{Console, Frame, when};
use crate::app::App;
use crate::service::factors::FactorError;
use crate::service::sessions::SessionError;
use crate::web::pages::render;
use crate::web::session::{SESSION_COOKIE, origin_of, see_other, set_cookie, unavailable};

/// A session as the page lists it.
struct SessionLine {
    id: Option<String>,
    device: String,
    address: String,
    created: String,
    last_used: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    frame: Frame,
    sessions: Vec<SessionLine>,
    /// Recent security events: when, what, from where.
    events: Vec<(String, String, String)>,
    message: Option<&'static str>,
    error: Option<String>,
    /// Whether an authenticator app is set up.
    factor_on: bool,
    /// An app being set up: its secret and `otpauth://` URI.
    enrolment: Option<(String, String)>,
    /// Recovery codes just made, shown this once.
    recovery: Vec<String>,
}

/// What a page shows besides the account's sessions and activity.
#[derive(Default)]
struct Shown {
    message: Option<&'static str>,
    error: Option<String>,
    enrolment: Option<(String, String)>,
    recovery: Vec<String>,
}

/// What the page says after a change (`?done=…`).
#[derive(Debug, Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
}

async fn page(app: &App, c: &Console, status: StatusCode, shown: Shown) -> Response {
    let factor_on = match app.factors.required(&c.account.account_id).await {
        Ok(on) => on,
        Err(e) => return unavailable(e),
    };
    let sessions = match app.sessions.list(&c.account.account_id, &c.session).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let events = match app.sessions.events(&c.account.account_id).await {
        Ok(e) => e
            .into_iter()
            .map(|e| (when(e.at), e.what, e.source))
            .collect(),
        Err(e) => return unavailable(e),
    };
    let sessions = sessions
        .into_iter()
        .map(|s| SessionLine {
            id: s.id,
            device: s.device,
            address: s.address,
            created: when(s.created_at),
            last_used: if s.last_used_at == 0 {
                "unknown".into()
            } else {
                when(s.last_used_at)
            },
            current: s.current,
        })
        .collect();
    render(
        status,
        &AccountPage {
            frame: c.frame(),
            sessions,
            events,
            message: shown.message,
            error: shown.error,
            factor_on,
            enrolment: shown.enrolment,
            recovery: shown.recovery,
        },
    )
}

/// The page again with the error the account must fix (a wrong code or password, a weak password).
async fn refused(app: &App, c: &Console, status: StatusCode, why: String) -> Response {
    let shown = Shown {
        error: Some(why),
        ..Shown::default()
    };
    page(app, c, status, shown).await
}

/// One field of a console form, empty when absent.
fn field(form: &keyward_core::form::Params, name: &str) -> String {
    form.single(name)
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_owned()
}

/// `GET /console/account`.
pub(crate) async fn show(State(app): State<App>, c: Console, Query(q): Query<Done>) -> Response {
    let message = match q.done.as_deref() {
        Some("password") => {
            Some("Your password is changed, and every other session is signed out.")
        }
        Some("ended") => Some("That session is signed out."),
        Some("others") => Some("Every other session is signed out."),
        Some("factor-removed") => {
            Some("The authenticator app is removed, and every other session is signed out.")
        }
        _ => None,
    };
    let shown = Shown {
        message,
        ..Shown::default()
    };
    page(&app, &c, StatusCode::OK, shown).await
}

/// `POST /console/account/password`.
pub(crate) async fn change_password(
    State(app): State<App>,
    c: Console,
    parts: Parts,
    body: Bytes,
) -> Response {
    let form = match c.form(&app, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let origin = origin_of(&parts);
    let changed = app
        .sessions
        .change_password(
            &c.actor,
            &c.account.account_id,
            &field(&form, "current"),
            &field(&form, "new"),
            origin,
        )
        .await;
    match changed {
        Ok(session) => {
            let mut r = see_other("/console/account?done=password");
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&app, SESSION_COOKIE, &session, app.sessions.session_ttl),
            );
            r
        }
        Err(
            e @ (SessionError::WrongPassword | SessionError::Weak(_) | SessionError::Throttled(_)),
        ) => {
            let status = match e {
                SessionError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::BAD_REQUEST,
            };
            refused(&app, &c, status, e.to_string()).await
        }
        Err(e) => unavailable(e),
    }
}

/// `POST /console/account/sessions/{id}/end`.
pub(crate) async fn end(
    State(app): State<App>,
    c: Console,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = c.form(&app, &body) {
        return r;
    }
    match app.sessions.end(&c.actor, &c.account.account_id, &id).await {
        Ok(()) => see_other("/console/account?done=ended"),
        Err(e) => unavailable(e),
    }
}

/// `POST /console/account/sessions/end-others`.
pub(crate) async fn end_others(State(app): State<App>, c: Console, body: Bytes) -> Response {
    if let Err(r) = c.form(&app, &body) {
        return r;
    }
    match app
        .sessions
        .end_others(&c.actor, &c.account.account_id, &c.session)
        .await
    {
        Ok(_) => see_other("/console/account?done=others"),
        Err(e) => unavailable(e),
    }
}

/// `POST /console/account/totp/begin`: a new secret for an authenticator app, shown with the form to confirm it.
pub(crate) async fn totp_begin(State(app): State<App>, c: Console, body: Bytes) -> Response {
    if let Err(r) = c.form(&app, &body) {
        return r;
    }
    match app
        .factors
        .begin(&c.account.account_id, &c.account.email)
        .await
    {
        Ok(e) => {
            let shown = Shown {
                enrolment: Some((e.secret, e.uri)),
                ..Shown::default()
            };
            page(&app, &c, StatusCode::OK, shown).await
        }
        Err(e) => unavailable(e),
    }
}

/// `POST /console/account/totp/confirm`: the first code from the app; the recovery codes are shown once.
pub(crate) async fn totp_confirm(State(app): State<App>, c: Console, body: Bytes) -> Response {
    let form = match c.form(&app, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let code = field(&form, "code");
    let keep = app.master.digest(&c.session);
    match app
        .factors
        .confirm(&c.actor, &c.account.account_id, &code, &keep)
        .await
    {
        Ok(recovery) => {
            let shown = Shown {
                message: Some(
                    "The authenticator app is set up: sign-ins now ask for its code. Every other session is signed out.",
                ),
                recovery,
                ..Shown::default()
            };
            page(&app, &c, StatusCode::OK, shown).await
        }
        Err(e @ FactorError::WrongCode) => {
            refused(&app, &c, StatusCode::BAD_REQUEST, e.to_string()).await
        }
        Err(e) => unavailable(e),
    }
}

/// `POST /console/account/totp/remove`: removes the app after the password.
pub(crate) async fn totp_remove(State(app): State<App>, c: Console, body: Bytes) -> Response {
    let form = match c.form(&app, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let password = field(&form, "password");
    let keep = app.master.digest(&c.session);
    match app
        .factors
        .remove(&c.actor, &c.account.account_id, &password, &keep)
        .await
    {
        Ok(()) => see_other("/console/account?done=factor-removed"),
        Err(e @ FactorError::WrongPassword) => {
            refused(&app, &c, StatusCode::BAD_REQUEST, e.to_string()).await
        }
        Err(e) => unavailable(e),
    }
}
