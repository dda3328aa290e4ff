//! The console at `/console`: an account holder's API keys, the apps they authorized and their usage; for
//! operators, every account, client, resource, signing key and the audit log. Server-rendered pages that work
//! without JavaScript (one small script adds copy buttons, shows the chosen kind of key's fields, converts PEM
//! public keys and makes key pairs in the browser), every form with the session's CSRF token, every change through
//! the admin service the JSON API uses.

mod account;
mod guide;
mod keys;
mod kinds;
mod operator;
mod usage;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keyward_core::form::{Params, decode_component};

use super::pages::{self, Said};
use super::session::{
    forbidden_form, login_url, see_other, session_csrf, session_csrf_ok, signed_in, unavailable,
    unreadable_form,
};
use crate::app::App;
use crate::service::Refusal;
use crate::service::accounts::AccountView;
use crate::service::admin::Actor;
use crate::service::api_keys::KeyError;

/// The console's routes (the page headers are added by `web::routes`).
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/console", get(|| async { see_other("/console/keys") }))
        .route("/console/keys", get(keys::list).post(keys::create))
        .route("/console/keys/new", get(keys::new))
        .route("/console/keys/{id}", get(keys::show))
        .route("/console/keys/{id}/rotate", post(keys::rotate))
        .route(
            "/console/keys/{id}/public-keys",
            post(kinds::add_public_key),
        )
        .route(
            "/console/keys/{id}/public-keys/remove",
            post(kinds::remove_public_key),
        )
        .route("/console/keys/{id}/federated", post(kinds::add_federated))
        .route(
            "/console/keys/{id}/federated/remove",
            post(kinds::remove_federated),
        )
        .route("/console/keys/{id}/dpop", post(kinds::set_dpop))
        .route("/console/keys/{id}/disable", post(keys::disable))
        .route("/console/keys/{id}/enable", post(keys::enable))
        .route(
            "/console/keys/{id}/delete",
            get(keys::confirm_delete).post(keys::delete),
        )
        .route("/console/apps", get(keys::apps))
        .route("/console/apps/revoke", post(keys::revoke_app))
        .route("/console/usage", get(usage::page))
        .route("/console/guide", get(guide::page))
        .route("/console/account", get(account::show))
        .route("/console/account/password", post(account::change_password))
        .route("/console/account/totp/begin", post(account::totp_begin))
        .route("/console/account/totp/confirm", post(account::totp_confirm))
        .route("/console/account/totp/remove", post(account::totp_remove))
        .route("/console/account/sessions/{id}/end", post(account::end))
        .route(
            "/console/account/sessions/end-others",
            post(account::end_others),
        )
        .merge(operator::routes())
        .route_layer(axum::middleware::from_fn(refuse_unreadable))
}

/// Refuses a console address whose path parameters or query hold text Keyward cannot read or store (a broken `%`
/// escape, bytes that are not UTF-8, NUL or another control character), naming the parameter, before any handler
/// reads it.
async fn refuse_unreadable(
    path: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    let refuse = |what: &str| {
        pages::error(
            StatusCode::BAD_REQUEST,
            "This address cannot be read",
            &format!(
                "{what} must not contain NUL or another control character, and must be UTF-8."
            ),
            "invalid_request",
        )
    };
    match &path {
        Ok(path) => {
            if let Some((name, _)) = path.iter().find(|(_, v)| v.chars().any(char::is_control)) {
                return refuse(&format!("The address's `{name}`"));
            }
        }
        Err(RawPathParamsRejection::InvalidUtf8InPathParam(_)) => return refuse("The address"),
        // A page without path parameters.
        Err(_) => {}
    }
    let query = request.uri().query().unwrap_or_default();
    for segment in query.split('&').filter(|s| !s.is_empty()) {
        let (name, value) = segment.split_once('=').unwrap_or((segment, ""));
        let Ok(name) = decode_component(name) else {
            return refuse("A query parameter's name");
        };
        if decode_component(value).is_err() {
            return refuse(&format!("The query parameter `{name}`"));
        }
    }
    next.run(request).await
}

/// The console's one script (copy buttons, the kind of key's fields, PEM conversion and key pairs made in the
/// browser), compiled into the binary.
pub(crate) async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        include_str!("../../assets/console.js"),
    )
}

/// A signed-in account on a console page: its session, the CSRF token of the page's forms, and who it is in the
/// audit log (the account, from the peer's address).
pub(crate) struct Console {
    pub session: String,
    pub account: AccountView,
    pub csrf: String,
    pub actor: Actor,
}

impl FromRequestParts<App> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Response> {
        match signed_in(app, &parts.headers).await? {
            Some((session, account)) => {
                let source = parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip().to_string())
                    .unwrap_or_else(|| "console".into());
                Ok(Console {
                    csrf: session_csrf(app, &session),
                    actor: Actor::account(&account.account_id, source),
                    session,
                    account,
                })
            }
            None => {
                // A page comes back after the login; a form's target does not (its body is gone).
                let here = match parts.method {
                    Method::GET => parts
                        .uri
                        .path_and_query()
                        .map_or("/console", |p| p.as_str()),
                    _ => "/console",
                };
                Err(see_other(&login_url(here)))
            }
        }
    }
}

impl Console {
    /// A form's fields, when its CSRF token is this session's; otherwise the answer to give.
    // The error is the handler's own response type, returned at once: boxing it would buy nothing.
    #[allow(clippy::result_large_err)]
    pub(crate) fn form(&self, app: &App, body: &[u8]) -> Result<Params, Response> {
        self.form_with_text(app, body, &[])
    }

    /// `form`, where the fields named in `text` (the form's multi-line text boxes) may hold line breaks.
    #[allow(clippy::result_large_err)]
    pub(crate) fn form_with_text(
        &self,
        app: &App,
        body: &[u8],
        text: &[&str],
    ) -> Result<Params, Response> {
        match Params::parse_with_text(body, text) {
            Ok(p) if session_csrf_ok(app, &self.session, &p) => Ok(p),
            Ok(_) => Err(forbidden_form()),
            Err(e) => Err(unreadable_form(&e)),
        }
    }

    /// Whether the account may use the operator pages.
    pub(crate) fn is_operator(&self) -> bool {
        self.account.role == "operator"
    }

    /// What every console page's frame shows: who is signed in, the forms' token, and the operator links.
    pub(crate) fn frame(&self) -> Frame {
        Frame {
            email: self.account.email.clone(),
            csrf: self.csrf.clone(),
            operator: self.is_operator(),
        }
    }
}

/// A form field's value, trimmed of nothing (the service trims names), empty when absent or repeated.
pub(crate) fn text(form: &Params, name: &str) -> String {
    form.single(name)
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_owned()
}

/// Maps the console's errors on one key: someone else's key or none is 404, the rest a failure page.
pub(crate) fn key_error(e: KeyError) -> Response {
    match pages::said(&e) {
        Said::Refused(Refusal::NotFound, _) => pages::error(
            StatusCode::NOT_FOUND,
            "No such key",
            "This key does not exist, or it is not one of yours.",
            "not_found",
        ),
        Said::Refused(r, message) => pages::refused(r, "The key was not changed", &message),
        _ => unavailable(e),
    }
}

/// The signed-in account of an operator page; anyone else gets 403.
pub(crate) struct Operator(pub Console);

impl FromRequestParts<App> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Response> {
        let c = Console::from_request_parts(parts, app).await?;
        if !c.is_operator() {
            return Err(pages::error(
                StatusCode::FORBIDDEN,
                "Operators only",
                "This page is for the platform's operators.",
                "forbidden",
            ));
        }
        Ok(Operator(c))
    }
}

/// The frame of every console page.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub email: String,
    pub csrf: String,
    pub operator: bool,
}

/// When the deployment requires a second factor of this account (`require_second_factor`) and it has none, the
/// page that leads it to set one up (403); `None` when it may go on and make keys.
pub(crate) async fn must_enrol(app: &App, c: &Console) -> Option<Response> {
    if !app.settings.require_second_factor.applies(&c.account.role) {
        return None;
    }
    match app.factors.required(&c.account.account_id).await {
        Ok(true) => None,
        Ok(false) => Some(pages::error(
            StatusCode::FORBIDDEN,
            "Set up two-step sign-in first",
            "This platform asks for a second factor before you make API keys: set up an authenticator app on \
             Your account (/console/account), then come back.",
            "second_factor_required",
        )),
        Err(e) => Some(unavailable(e)),
    }
}

/// Unix seconds as `2026-11-22 14:05 UTC` (the proleptic Gregorian calendar, from days since 1970-01-01).
pub(crate) fn when(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3_600,
        secs % 3_600 / 60
    )
}

/// `when` for an optional time, `never` when absent.
pub(crate) fn when_or_never(t: Option<i64>) -> String {
    t.map_or_else(|| "never".into(), when)
}

#[cfg(test)]
mod tests {
    use super::when;

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(when(1_795_392_300), "2026-11-23 00:05 UTC");
        assert_eq!(when(-60), "1969-12-31 23:59 UTC");
    }
}
