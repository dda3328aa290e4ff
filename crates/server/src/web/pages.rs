//! The page templates (askama, HTML-escaped by default) and how a page becomes a response.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::service::{Outcome, Refusal, store_refusal};
use crate::store::StoreError;

/// The login form.
#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct Login<'a> {
    pub error: Option<&'a str>,
    pub email: &'a str,
    pub csrf: &'a str,
    pub next: &'a str,
}

/// "Forgot password": the form, the answer after it (the same for every address), or why there is none.
#[derive(Template)]
#[template(path = "forgot.html")]
pub(crate) struct Forgot<'a> {
    pub email_configured: bool,
    pub sent: bool,
    pub minutes: i64,
    pub csrf: &'a str,
}

/// The reset link's page: the new-password form, or the end of the reset.
#[derive(Template)]
#[template(path = "reset.html")]
pub(crate) struct Reset<'a> {
    pub done: bool,
    pub error: Option<&'a str>,
    pub csrf: &'a str,
    pub token: &'a str,
}

/// The consent screen.
#[derive(Template)]
#[template(path = "consent.html")]
pub(crate) struct Consent<'a> {
    pub app_name: &'a str,
    pub app_description: &'a str,
    pub email: &'a str,
    pub resource_name: &'a str,
    /// (scope, plain words).
    pub scopes: Vec<(String, String)>,
    pub redirect_host: &'a str,
    pub csrf: &'a str,
    /// The authorization request, carried to the decision as hidden fields.
    pub fields: Vec<(&'static str, String)>,
}

/// An error shown to the person (never a redirect).
#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct Error<'a> {
    pub heading: &'a str,
    pub message: &'a str,
    pub code: &'a str,
}

/// Renders a page with a status. A template that fails to render (it cannot, with these types) is a 500.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// An error page.
pub(crate) fn error(status: StatusCode, heading: &str, message: &str, code: &str) -> Response {
    render(
        status,
        &Error {
            heading,
            message,
            code,
        },
    )
}

/// What a page says of a service's error.
pub(crate) enum Said {
    /// The request was refused, in the service's words.
    Refused(Refusal, String),
    /// The database is unavailable.
    Unavailable,
    /// The service failed.
    Failed,
}

/// The status and code a refusal is answered with, as the admin API answers it.
pub(crate) fn refusal_status(r: Refusal) -> (StatusCode, &'static str) {
    match r {
        Refusal::Invalid => (StatusCode::BAD_REQUEST, "invalid_request"),
        Refusal::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Refusal::Conflict => (StatusCode::CONFLICT, "conflict"),
    }
}

/// Reads a service's error for a page.
pub(crate) fn said(e: &impl Outcome) -> Said {
    if let Some(store) = e.store_error() {
        return match store_refusal(store) {
            Some((r, message)) => Said::Refused(r, message),
            None if matches!(store, StoreError::Unavailable(_)) => Said::Unavailable,
            None => Said::Failed,
        };
    }
    match e.refusal() {
        Some(r) => Said::Refused(r, e.to_string()),
        None => Said::Failed,
    }
}

/// The page for a refusal, under `heading`.
pub(crate) fn refused(r: Refusal, heading: &str, message: &str) -> Response {
    let (status, code) = refusal_status(r);
    error(status, heading, message, code)
}
