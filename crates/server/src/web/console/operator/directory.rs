//! Every account and every client, searched and paged by id, each enabled or disabled from its row.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::form::encode_component;

use super::{ACCOUNTS, CLIENTS, Listing, PAGE, Pager, back, refused};
use crate::app::App;
use crate::service::accounts::{AccountInput, AccountView};
use crate::service::admin::ClientView;
use crate::service::{Accounts, Admin as AdminService};
use crate::web::console::{Console, Frame, Operator, when};
use crate::web::pages::render;
use crate::web::session::{see_other, unavailable};

type Shared = State<App>;

/// An account as a row of the list.
pub(crate) struct AccountLine {
    pub id: String,
    pub email: String,
    pub partner_id: String,
    pub role: String,
    pub enabled: bool,
    /// `resource: scope scope`, one per resource its keys may use.
    pub key_scopes: Vec<String>,
    pub created: String,
}

impl From<&AccountView> for AccountLine {
    fn from(a: &AccountView) -> Self {
        AccountLine {
            id: a.account_id.clone(),
            email: a.email.clone(),
            partner_id: a.partner_id.clone().unwrap_or_default(),
            role: a.role.clone(),
            enabled: a.enabled,
            key_scopes: a
                .key_scopes
                .iter()
                .map(|(resource, scopes)| format!("{resource}: {}", scopes.join(" ")))
                .collect(),
            created: when(a.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/op_accounts.html")]
struct AccountsPage {
    frame: Frame,
    q: String,
    after: String,
    rows: Vec<AccountLine>,
    pager: Pager,
}

/// `GET /console/admin/accounts?q=&after=`: a page of accounts by id; the search matches the email or partner id.
pub(crate) async fn accounts(
    State(accounts): State<Arc<Accounts>>,
    Operator(c): Operator,
    Query(l): Query<Listing>,
) -> Response {
    let found = match accounts.accounts_list(l.after(), l.search(), PAGE).await {
        Ok(a) => a,
        Err(e) => return unavailable(e),
    };
    let last = found.last().map(|a| a.account_id.clone());
    render(
        StatusCode::OK,
        &AccountsPage {
            frame: c.frame(),
            pager: Pager::new(
                ACCOUNTS,
                l.q().trim(),
                "after",
                l.after(),
                found.len(),
                last,
            ),
            q: l.q().to_owned(),
            after: l.after().to_owned(),
            rows: found.iter().map(AccountLine::from).collect(),
        },
    )
}

/// Enables or disables an account from its row, then shows the list it was on again.
async fn account_set(app: &App, c: &Console, id: &str, body: &[u8], enabled: bool) -> Response {
    let form = match c.form(app, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    // An operator who disabled their own account would be signed out mid-click with no way back in here.
    if !enabled && id == c.account.account_id {
        return crate::web::pages::error(
            axum::http::StatusCode::CONFLICT,
            "The account was not changed",
            "You cannot disable the account you are signed in with: use another operator account or the CLI.",
            "conflict",
        );
    }
    let input = AccountInput {
        enabled: Some(enabled),
        ..AccountInput::default()
    };
    match app.accounts.account_update(&c.actor, id, input).await {
        Ok(_) => see_other(&back(ACCOUNTS, &form)),
        Err(e) => refused(e, "The account was not changed"),
    }
}

/// `POST /console/admin/accounts/{id}/enable`: the account may log in again (its keys stay disabled).
pub(crate) async fn account_enable(
    State(app): Shared,
    Operator(c): Operator,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    account_set(&app, &c, &id, &body, true).await
}

/// `POST /console/admin/accounts/{id}/disable`: it cannot log in; its sessions end, its grants are revoked and
/// its keys disabled.
pub(crate) async fn account_disable(
    State(app): Shared,
    Operator(c): Operator,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    account_set(&app, &c, &id, &body, false).await
}

/// A client as a row of the list.
pub(crate) struct ClientLine {
    pub id: String,
    /// The id as a path segment of the row's form.
    pub path_id: String,
    pub name: String,
    pub owner: Option<String>,
    pub resources: Vec<String>,
    pub scopes: Vec<String>,
    pub enabled: bool,
    pub created: String,
}

impl From<&ClientView> for ClientLine {
    fn from(v: &ClientView) -> Self {
        ClientLine {
            id: v.client_id.clone(),
            path_id: encode_component(&v.client_id),
            name: v.name.clone(),
            owner: v.owner_account.clone(),
            resources: v.resources.clone(),
            scopes: v.scopes.clone(),
            enabled: v.enabled,
            created: when(v.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/op_clients.html")]
struct ClientsPage {
    frame: Frame,
    q: String,
    after: String,
    rows: Vec<ClientLine>,
    pager: Pager,
}

/// `GET /console/admin/clients?q=&after=`: a page of clients by id; the search matches the id or name.
pub(crate) async fn clients(
    State(admin): State<Arc<AdminService>>,
    Operator(c): Operator,
    Query(l): Query<Listing>,
) -> Response {
    let found = match admin.clients_list(l.after(), l.search(), PAGE).await {
        Ok(v) => v,
        Err(e) => return unavailable(e),
    };
    let last = found.last().map(|v| v.client_id.clone());
    render(
        StatusCode::OK,
        &ClientsPage {
            frame: c.frame(),
            pager: Pager::new(CLIENTS, l.q().trim(), "after", l.after(), found.len(), last),
            q: l.q().to_owned(),
            after: l.after().to_owned(),
            rows: found.iter().map(ClientLine::from).collect(),
        },
    )
}

/// Enables or disables a client from its row, then shows the list it was on again.
async fn client_set(app: &App, c: &Console, id: &str, body: &[u8], enabled: bool) -> Response {
    let form = match c.form(app, body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match app.admin.client_set_enabled(&c.actor, id, enabled).await {
        Ok(_) => see_other(&back(CLIENTS, &form)),
        Err(e) => refused(e, "The client was not changed"),
    }
}

/// `POST /console/admin/clients/{id}/enable`.
pub(crate) async fn client_enable(
    State(app): Shared,
    Operator(c): Operator,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    client_set(&app, &c, &id, &body, true).await
}

/// `POST /console/admin/clients/{id}/disable`: its secrets get no more tokens and its tokens stop passing
/// introspection, until it is enabled again.
pub(crate) async fn client_disable(
    State(app): Shared,
    Operator(c): Operator,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    client_set(&app, &c, &id, &body, false).await
}
