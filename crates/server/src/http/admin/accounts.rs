//! The admin API's accounts and what they delegated: accounts created, listed, changed and deleted, their
//! authorized apps withdrawn, and grants listed, shown and revoked.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::input::{self, Body, PAGE_DEFAULT, Params, Q};
use super::{Admin, Page, Shared, created_once, next_after};
use crate::http::error::ApiError;
use crate::service::accounts::AccountInput;
use crate::service::resets::RESET_TTL_SECONDS;
use crate::service::{Accounts, Consents, Resets};
use crate::store::GrantFilter;

pub(super) async fn accounts_list(
    State(accounts): State<Arc<Accounts>>,
    _: Admin,
    Q(page): Q<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(PAGE_DEFAULT);
    let items = accounts
        .accounts_list(
            page.after.as_deref().unwrap_or(""),
            page.q.as_deref(),
            limit,
        )
        .await?;
    let next = next_after(&items, limit, |a| &a.account_id);
    Ok(Json(json!({"items": items, "next_after": next})))
}

pub(super) async fn account_create(
    State(accounts): State<Arc<Accounts>>,
    Admin(a): Admin,
    Body(input): Body<AccountInput>,
) -> Result<Response, ApiError> {
    let (view, password) = accounts.account_create(&a, input).await?;
    created_once(view, "password", password)
}

pub(super) async fn account_get(
    State(accounts): State<Arc<Accounts>>,
    _: Admin,
    Params(id): Params<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(accounts.account_get(&id).await?)))
}

pub(super) async fn account_update(
    State(accounts): State<Arc<Accounts>>,
    Admin(a): Admin,
    Params(id): Params<String>,
    Body(input): Body<AccountInput>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(accounts.account_update(&a, &id, input).await?)))
}

/// `POST /accounts/{id}/reset-link`: a one-time password reset link (30 minutes) for the operator to hand over,
/// as `keyward accounts reset-link` prints it; shown once, stored only as a digest.
pub(super) async fn account_reset_link(
    State(resets): State<Arc<Resets>>,
    Admin(a): Admin,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    let link = resets.link_for(&a, &id).await?;
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(json!({"link": link, "expires_in": RESET_TTL_SECONDS})),
    )
        .into_response())
}

pub(super) async fn account_delete(
    State(accounts): State<Arc<Accounts>>,
    Admin(a): Admin,
    Params(id): Params<String>,
) -> Result<StatusCode, ApiError> {
    accounts.account_delete(&a, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn authorizations_list(
    State(app): Shared,
    _: Admin,
    Params(id): Params<String>,
) -> Result<Json<Value>, ApiError> {
    // An unknown account is a 404, not an empty list.
    app.accounts.account_get(&id).await?;
    Ok(Json(
        json!({"items": app.consents.authorized_apps(&id).await?}),
    ))
}

pub(super) async fn authorization_withdraw(
    State(consents): State<Arc<Consents>>,
    Admin(a): Admin,
    Params((id, client_id)): Params<(String, String)>,
) -> Result<StatusCode, ApiError> {
    consents.consent_withdraw(&a, &id, &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantsQuery {
    account_id: Option<String>,
    client_id: Option<String>,
    /// Only grants neither revoked nor expired now.
    #[serde(default, deserialize_with = "input::boolean")]
    live: Option<bool>,
    after: Option<String>,
    #[serde(default, deserialize_with = "input::page_size")]
    limit: Option<i64>,
}

pub(super) async fn grants_list(
    State(app): Shared,
    _: Admin,
    Q(q): Q<GrantsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    // An empty filter (`account_id=`) is no filter, as an empty `after` is the first page.
    let filter = GrantFilter {
        account_id: q.account_id.as_deref().filter(|s| !s.is_empty()),
        client_id: q.client_id.as_deref().filter(|s| !s.is_empty()),
        live_at: (q.live == Some(true)).then(|| app.clock.now()),
        idle_ttl: app.delegated.refresh_token_idle_ttl,
    };
    let items = app
        .consents
        .grants_list(&filter, q.after.as_deref().unwrap_or(""), limit)
        .await?;
    let next = next_after(&items, limit, |g| &g.id);
    Ok(Json(json!({"items": items, "next_after": next})))
}

pub(super) async fn grant_get(
    State(app): Shared,
    _: Admin,
    Params(id): Params<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(app.consents.grant_get(&id).await?)))
}

pub(super) async fn grant_revoke(
    State(consents): State<Arc<Consents>>,
    Admin(a): Admin,
    Params(id): Params<String>,
) -> Result<StatusCode, ApiError> {
    consents.grant_revoke(&a, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
