//! The operator's pages: every account, client and resource, the signing keys (with rotation) and the audit log,
//! with search and paging. Only accounts with the operator role see them.

mod directory;
mod platform;

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};
use keyward_core::form::{Params, encode_component};
use serde::Deserialize;

use crate::app::App;
use crate::service::Outcome;
use crate::web::pages;
use crate::web::pages::Said;
use crate::web::session::{see_other, unavailable};

/// The operator routes.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/console/admin", get(|| async { see_other(ACCOUNTS) }))
        .route(ACCOUNTS, get(directory::accounts))
        .route(
            "/console/admin/accounts/{id}/enable",
            post(directory::account_enable),
        )
        .route(
            "/console/admin/accounts/{id}/disable",
            post(directory::account_disable),
        )
        .route(CLIENTS, get(directory::clients))
        .route(
            "/console/admin/clients/{id}/enable",
            post(directory::client_enable),
        )
        .route(
            "/console/admin/clients/{id}/disable",
            post(directory::client_disable),
        )
        .route("/console/admin/resources", get(platform::resources))
        .route(KEYS, get(platform::keys))
        .route("/console/admin/keys/rotate", post(platform::rotate))
        .route(AUDIT, get(platform::audit))
}

/// The list pages' addresses.
const ACCOUNTS: &str = "/console/admin/accounts";
const CLIENTS: &str = "/console/admin/clients";
const KEYS: &str = "/console/admin/keys";
const AUDIT: &str = "/console/admin/audit";

/// The rows of one page of a list.
const PAGE: i64 = 50;

/// A list page's query: the search and the paging cursor (`after` an id, or `before` an audit position).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Listing {
    q: Option<String>,
    after: Option<String>,
    before: Option<String>,
}

impl Listing {
    /// The search as typed (shown again in the search box).
    fn q(&self) -> &str {
        self.q.as_deref().unwrap_or_default()
    }

    /// The search to run: none when blank.
    fn search(&self) -> Option<&str> {
        Some(self.q().trim()).filter(|s| !s.is_empty())
    }

    /// The id the page starts after; empty for the first page.
    fn after(&self) -> &str {
        self.after.as_deref().unwrap_or_default()
    }

    /// The audit position the page starts before; a missing or hand-mangled one is the newest page.
    fn before(&self) -> Option<i64> {
        self.before.as_deref().and_then(|b| b.parse().ok())
    }
}

/// The links under a list: the next page when this one is full, the first when this one is not it.
pub(crate) struct Pager {
    pub next: Option<String>,
    pub first: Option<String>,
}

impl Pager {
    /// The pager of `path` searched for `q`, showing `shown` rows from `cursor` (empty on the first page);
    /// `last` is the cursor the next page starts from, `name` its parameter.
    fn new(
        path: &str,
        q: &str,
        name: &str,
        cursor: &str,
        shown: usize,
        last: Option<String>,
    ) -> Self {
        let full = i64::try_from(shown).is_ok_and(|n| n >= PAGE);
        Pager {
            next: last.filter(|_| full).map(|l| list_url(path, q, name, &l)),
            first: (!cursor.is_empty()).then(|| list_url(path, q, name, "")),
        }
    }
}

/// `path?q=…&name=…`, each parameter present only when it has a value.
fn list_url(path: &str, q: &str, name: &str, cursor: &str) -> String {
    let params: Vec<String> = [("q", q), (name, cursor)]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode_component(v)))
        .collect();
    if params.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", params.join("&"))
    }
}

/// Where a row's form returns to: the list it was on (its `q` and `after` are hidden fields of the form).
fn back(path: &str, form: &Params) -> String {
    let field = |n| form.single(n).ok().flatten().unwrap_or_default();
    list_url(path, field("q").trim(), "after", field("after"))
}

/// An admin service error on an operator page: what the operator asked for was refused (a 4xx, with the service's
/// words), or the service failed.
fn refused(e: impl Outcome, heading: &str) -> Response {
    match pages::said(&e) {
        Said::Refused(r, message) => pages::refused(r, heading, &message),
        _ => unavailable(e),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn list_addresses_carry_only_what_is_set() {
        assert_eq!(list_url(ACCOUNTS, "", "after", ""), ACCOUNTS);
        assert_eq!(
            list_url(ACCOUNTS, "a b&c", "after", "acct_1"),
            "/console/admin/accounts?q=a%20b%26c&after=acct_1"
        );
        assert_eq!(
            list_url(AUDIT, "", "before", "7"),
            "/console/admin/audit?before=7"
        );
    }

    #[test]
    fn pages_link_onwards_only_when_full() {
        let p = Pager::new(CLIENTS, "x", "after", "", 3, Some("c3".into()));
        assert!(p.next.is_none() && p.first.is_none());
        let p = Pager::new(CLIENTS, "x", "after", "c0", 50, Some("c50".into()));
        assert_eq!(
            p.next.as_deref(),
            Some("/console/admin/clients?q=x&after=c50")
        );
        assert_eq!(p.first.as_deref(), Some("/console/admin/clients?q=x"));
    }

    #[test]
    fn refusals_show_the_service_words_and_failures_do_not() {
        let r = refused(
            crate::service::admin::AdminError::invalid("alg: unknown"),
            "Not rotated",
        );
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = refused(
            crate::store::StoreError::Unavailable(sqlx::Error::PoolTimedOut),
            "Not rotated",
        );
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
