//! What the platform is made of and what happened to it: the resources, the signing keys (rotated from the page)
//! and the audit log, newest first.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::duration::format_seconds;
use keyward_core::resource::SigningAlg;
use serde_json::Value;

use super::{AUDIT, KEYS, Listing, PAGE, Pager, refused};
use crate::app::App;
use crate::service::Admin as AdminService;
use crate::service::admin::{AuditView, ResourceView};
use crate::web::console::{Frame, Operator, when};
use crate::web::pages::render;
use crate::web::session::{see_other, unavailable};

type Shared = State<App>;

/// A resource as a row of the list.
pub(crate) struct ResourceLine {
    pub identifier: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub lifetime: String,
    pub signing_alg: String,
}

impl From<&ResourceView> for ResourceLine {
    fn from(r: &ResourceView) -> Self {
        ResourceLine {
            identifier: r.identifier.clone(),
            name: r.name.clone(),
            scopes: r.scopes.clone(),
            lifetime: format_seconds(r.access_token_ttl),
            signing_alg: r.signing_alg.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/op_resources.html")]
struct ResourcesPage {
    frame: Frame,
    q: String,
    rows: Vec<ResourceLine>,
}

/// Whether a resource's identifier or name contains `q` (case-insensitive; no search matches all).
fn resource_matches(r: &ResourceView, q: Option<&str>) -> bool {
    q.is_none_or(|q| {
        let q = q.to_lowercase();
        r.identifier.to_lowercase().contains(&q) || r.name.to_lowercase().contains(&q)
    })
}

/// `GET /console/admin/resources?q=`: every resource (there are few), searched by identifier or name.
pub(crate) async fn resources(
    State(admin): State<Arc<AdminService>>,
    Operator(c): Operator,
    Query(l): Query<Listing>,
) -> Response {
    let all = match admin.resources_list().await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    render(
        StatusCode::OK,
        &ResourcesPage {
            frame: c.frame(),
            q: l.q().to_owned(),
            rows: all
                .iter()
                .filter(|r| resource_matches(r, l.search()))
                .map(ResourceLine::from)
                .collect(),
        },
    )
}

/// A signing key as a row of the list.
pub(crate) struct KeyLine {
    pub kid: String,
    pub alg: String,
    pub state: String,
    pub created: String,
    pub activates: String,
}

impl From<&Value> for KeyLine {
    fn from(k: &Value) -> Self {
        let text = |f: &str| k[f].as_str().unwrap_or_default().to_owned();
        let time = |f: &str| k[f].as_i64().map(when).unwrap_or_default();
        KeyLine {
            kid: text("kid"),
            alg: text("alg"),
            state: text("state"),
            created: time("created_at"),
            activates: time("activates_at"),
        }
    }
}

#[derive(Template)]
#[template(path = "console/op_keys.html")]
struct KeysPage {
    frame: Frame,
    rows: Vec<KeyLine>,
    algs: Vec<&'static str>,
    /// How long a new key is published before it signs, as `1h`.
    publish_delay: String,
}

/// `GET /console/admin/keys`: the signing keys with their state, and the rotation form.
pub(crate) async fn keys(
    State(admin): State<Arc<AdminService>>,
    Operator(c): Operator,
) -> Response {
    render(
        StatusCode::OK,
        &KeysPage {
            frame: c.frame(),
            rows: admin.keys_list().iter().map(KeyLine::from).collect(),
            algs: SigningAlg::ALL.iter().map(|a| a.as_str()).collect(),
            publish_delay: format_seconds(admin.key_publish_delay),
        },
    )
}

/// `POST /console/admin/keys/rotate`: a new key for the chosen algorithm (`alg`), or for each when it is empty;
/// published now, signing after the publish delay.
pub(crate) async fn rotate(State(app): Shared, Operator(c): Operator, body: Bytes) -> Response {
    let form = match c.form(&app, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let alg = form.single("alg").ok().flatten().filter(|a| !a.is_empty());
    match app.admin.keys_rotate(&c.actor, alg).await {
        Ok(_) => see_other(KEYS),
        Err(e) => refused(e, "The keys were not rotated"),
    }
}

/// An audit entry as a row of the list.
pub(crate) struct AuditLine {
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub source: String,
}

impl From<&AuditView> for AuditLine {
    fn from(e: &AuditView) -> Self {
        AuditLine {
            time: when(e.at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            // `{}` says nothing.
            detail: if e.detail == "{}" {
                String::new()
            } else {
                e.detail.clone()
            },
            source: e.source.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/op_audit.html")]
struct AuditPage {
    frame: Frame,
    q: String,
    rows: Vec<AuditLine>,
    pager: Pager,
}

/// `GET /console/admin/audit?q=&before=`: the audit log newest first; the search matches actor, action or target.
pub(crate) async fn audit(
    State(admin): State<Arc<AdminService>>,
    Operator(c): Operator,
    Query(l): Query<Listing>,
) -> Response {
    let before = l.before();
    let found = match admin.audit_list(before, l.search(), PAGE).await {
        Ok(e) => e,
        Err(e) => return unavailable(e),
    };
    let last = found.last().map(|e| e.id.to_string());
    let cursor = before.map(|b| b.to_string()).unwrap_or_default();
    render(
        StatusCode::OK,
        &AuditPage {
            frame: c.frame(),
            pager: Pager::new(AUDIT, l.q().trim(), "before", &cursor, found.len(), last),
            q: l.q().to_owned(),
            rows: found.iter().map(AuditLine::from).collect(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_match_by_identifier_or_name_in_any_case() {
        let r = ResourceView {
            id: "res_1".into(),
            identifier: "https://api.example.com".into(),
            name: "Orders API".into(),
            scopes: vec!["orders:read".into()],
            access_token_ttl: 900,
            signing_alg: "ES256".into(),
            scope_details: serde_json::json!({}),
            require_dpop: false,
            created_at: 0,
            updated_at: 0,
        };
        for q in [None, Some("API.EXAMPLE"), Some("orders")] {
            assert!(resource_matches(&r, q), "{q:?}");
        }
        assert!(!resource_matches(&r, Some("billing")));
    }
}
