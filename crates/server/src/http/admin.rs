//! The admin API under `/admin/v1`: JSON over the admin service, guarded by Keyward's own bearer tokens
//! (audience `urn:keyward:admin`; `keyward:admin` for every operation, `keyward:admin:read` for reads): clients,
//! resources, keys and the audit log, and accounts with what they delegated (their authorized apps and grants).

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyward_core::resource::{ADMIN_READ_SCOPE, ADMIN_RESOURCE, ADMIN_SCOPE};
use keyward_core::{ErrorCode, OAuthError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::http::error::ApiError;
use crate::service::Admin as AdminService;
use crate::service::accounts::AccountInput;
use crate::service::admin::{
    Actor, ClientInput, DurationValue, ResourceInput, ResourcePatch, resource_json,
};

mod accounts;
mod input;

use accounts::{
    account_create, account_delete, account_get, account_reset_link, account_update, accounts_list,
    authorization_withdraw, authorizations_list, grant_get, grant_revoke, grants_list,
};

use input::{Body, Input, OptionalBody, PAGE_DEFAULT, PAGE_MAX, Params, Q};

impl Input for ClientInput {
    const NULLABLE: &'static [&'static str] = &["owner_account", "jwks", "jwks_uri"];
}
impl Input for ResourceInput {}
impl Input for ResourcePatch {}
impl Input for AccountInput {}
impl Input for SecretAdd {}
impl Input for Rotate {}

/// The body of `PATCH /clients/{id}`: a client's fields, `jwks` and `jwks_uri` nullable (`null` removes them);
/// `owner_account`, set on create only, is refused by the service whatever its value.
#[derive(Deserialize)]
#[serde(transparent)]
struct ClientPatch(ClientInput);
impl Input for ClientPatch {
    const NULLABLE: &'static [&'static str] = &["jwks", "jwks_uri"];
}

/// The OpenAPI document of this API, kept true by a test that calls every operation it lists.
pub const OPENAPI: &str = include_str!("../../../../docs/admin-openapi.json");

/// The routes, relative to `/admin/v1`.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/clients", get(clients_list).post(client_create))
        .route(
            "/clients/{id}",
            get(client_get).patch(client_update).delete(client_delete),
        )
        .route("/clients/{id}/disable", post(client_disable))
        .route("/clients/{id}/enable", post(client_enable))
        .route("/clients/{id}/secrets", get(secrets_list).post(secret_add))
        .route("/clients/{id}/usage", get(usage))
        .route(
            "/clients/{id}/secrets/{secret_id}",
            axum::routing::delete(secret_retire),
        )
        .route("/resources", get(resources_list).post(resource_create))
        .route(
            "/resources/{id}",
            get(resource_get)
                .patch(resource_update)
                .delete(resource_delete),
        )
        .route("/keys", get(keys_list))
        .route("/keys/rotate", post(keys_rotate))
        .route("/audit", get(audit_list))
        .route("/accounts", get(accounts_list).post(account_create))
        .route(
            "/accounts/{id}",
            get(account_get)
                .patch(account_update)
                .delete(account_delete),
        )
        .route("/accounts/{id}/reset-link", post(account_reset_link))
        .route("/accounts/{id}/authorizations", get(authorizations_list))
        .route(
            "/accounts/{id}/authorizations/{client_id}",
            axum::routing::delete(authorization_withdraw),
        )
        .route("/grants", get(grants_list))
        .route("/grants/{id}", get(grant_get).delete(grant_revoke))
        .method_not_allowed_fallback(method_not_allowed)
}

/// 405 in the admin error shape (axum's own has an empty body); the `Allow` header axum adds names the methods.
async fn method_not_allowed() -> ApiError {
    ApiError::Plain {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "invalid_request",
        message: "this path does not take this method (the Allow header lists those it takes)"
            .into(),
    }
}

/// An authenticated admin caller.
pub(crate) struct Admin(Actor);

impl FromRequestParts<App> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::NoToken)?;
        let value = header.to_str().map_err(|_| {
            bearer_error(ErrorCode::InvalidRequest, "malformed Authorization header")
        })?;
        let token = match value.split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                token.trim()
            }
            _ => return Err(ApiError::NoToken),
        };
        let claims = app.issuer.verify_token(token).await?;
        if claims.aud != ADMIN_RESOURCE {
            return Err(bearer_error(
                ErrorCode::InvalidToken,
                "the token is not for the admin API",
            ));
        }
        let scopes: Vec<&str> = claims.scope.as_deref().unwrap_or("").split(' ').collect();
        let read_only = parts.method == Method::GET || parts.method == Method::HEAD;
        let allowed =
            scopes.contains(&ADMIN_SCOPE) || (read_only && scopes.contains(&ADMIN_READ_SCOPE));
        if !allowed {
            return Err(bearer_error(
                ErrorCode::InsufficientScope,
                "this operation needs the keyward:admin scope",
            ));
        }
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_default();
        Ok(Admin(Actor::client(&claims.client_id, source)))
    }
}

fn bearer_error(code: ErrorCode, description: &'static str) -> ApiError {
    ApiError::Bearer(OAuthError::new(code, description))
}

type Shared = State<App>;

/// The description as this server applies it: the longest access-token lifetime a resource may have is this
/// server's `max_access_token_ttl`, not the default the file names.
async fn openapi(State(app): Shared) -> Response {
    let Ok(mut doc) = serde_json::from_str::<Value>(OPENAPI) else {
        // The file is compiled in and parsed by a test; were it broken, serve it as it is.
        return ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response();
    };
    for schema in ["ResourceInput", "ResourcePatch"] {
        let ttl = &mut doc["components"]["schemas"][schema]["properties"]["access_token_ttl"];
        if let Some(seconds) = ttl["oneOf"].get_mut(0) {
            seconds["maximum"] = json!(app.admin.max_access_token_ttl);
        }
    }
    Json(doc).into_response()
}

/// A page of a listing ordered by id (clients, accounts): `after` the last id of the previous page.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    after: Option<String>,
    #[serde(default, deserialize_with = "input::page_size")]
    limit: Option<i64>,
    /// Search: only items whose id, name or email contains it (any case).
    q: Option<String>,
}

/// The `next_after` of a page: its last id when it is full (the page size clamped as the service clamps it).
fn next_after<T>(items: &[T], limit: i64, id: impl Fn(&T) -> &str) -> Option<String> {
    if items.len() as i64 >= limit.clamp(1, PAGE_MAX) {
        items.last().map(|i| id(i).to_owned())
    } else {
        None
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditPage {
    #[serde(default, deserialize_with = "input::integer")]
    before: Option<i64>,
    #[serde(default, deserialize_with = "input::page_size")]
    limit: Option<i64>,
    /// Search: only entries whose actor, action or target contains it (any case).
    q: Option<String>,
}

async fn clients_list(
    State(admin): State<Arc<AdminService>>,
    _: Admin,
    Q(page): Q<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(PAGE_DEFAULT);
    let items = admin
        .clients_list(
            page.after.as_deref().unwrap_or(""),
            page.q.as_deref(),
            limit,
        )
        .await?;
    let next = next_after(&items, limit, |c| &c.client_id);
    Ok(Json(json!({"items": items, "next_after": next})))
}

async fn client_create(
    State(admin): State<Arc<AdminService>>,
    Admin(a): Admin,
    Body(input): Body<ClientInput>,
) -> Result<Response, ApiError> {
    let (view, secret) = admin.client_create(&a, input).await?;
    created_once(view, "client_secret", secret)
}

/// 201 with what was created and, when there is one, the member shown only now (a secret, a password), never
/// cached.
fn created_once(
    view: impl serde::Serialize,
    member: &str,
    once: Option<String>,
) -> Result<Response, ApiError> {
    let mut body = serde_json::to_value(view).map_err(anyhow::Error::from)?;
    if let Some(value) = once {
        body[member] = json!(value);
    }
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}

async fn client_get(
    State(admin): State<Arc<AdminService>>,
    _: Admin,
    Params(id): Params<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(admin.client_get(&id).await?)))
}

async fn client_update(
    State(admin): State<Arc<AdminService>>,
    Admin(a): Admin,
    Params(id): Params<String>,
    Body(ClientPatch(input)): Body<ClientPatch>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(admin.client_update(&a, &id, input).await?)))
}

async fn client_delete(
    State(admin): State<Arc<AdminService>>,
    Admin(a): Admin,
    Params(id): Params<String>,
) -> Result<StatusCode, ApiError> {
    admin.client_delete(&a, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn client_disable(
    State(admin): State<Arc<AdminService>>,
    Admin(a): Admin,
    Params(id): Params<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(admin.client_set_enabled(&a, &id, false).await?)))
}

async fn client_enable(
    State(admin): State<Arc<AdminService>>,
    Admin(a): Admin,
    Params(id): Params<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(admin.client_set_enabled(&a, &id, true).await?)))
}

async fn secrets_list(
    State(admin): State<Arc<AdminService>>,
    _: Admin,
    Params(id): Params<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"items": admin.secrets_list(&id).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageSpan {
    #[serde(default, deserialize_with = "input::integer")]
    hours: Option<i64>,
}

/// Tokens issued to a client per hour (the console's chart): every node's flushed counts and this node's
/// unflushed ones.
async fn usage(
    State(admin): State<Arc<AdminService>>,
    _: Admin,
    Params(id): Params<String>,
    Q(span): Q<UsageSpan>,
) -> Result<Json<Value>, ApiError> {
    let hours = span.hours.unwrap_or(24);
    if !(1..=31 * 24).contains(&hours) {
        return Err(ApiError::bad_request("hours: must be from 1 to 744"));
    }
    admin.client_get(&id).await?;
    let series = admin.usage_series(&id, hours as usize).await?;
    let total: i64 = series.iter().map(|(_, n)| n).sum();
    let items: Vec<Value> = series
        .iter()
        .map(|(hour, tokens)| json!({"hour": hour, "tokens": tokens}))
        .collect();
    Ok(Json(
        json!({"client_id": id, "total": total, "items": items}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SecretAdd {
    retire_old_after: Option<DurationValue>,
}

async fn secret_add(
    State(admin): State<Arc<AdminService>>,
    Admin(a): Admin,
    Params(id): Params<String>,
    OptionalBody(input): OptionalBody<SecretAdd>,
) -> Result<Response, ApiError> {
    let made = admin.secret_add(&a, &id, input.retire_old_after).await?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(made),
    )
        .into_response())
}

async fn secret_retire(
    State(admin): State<Arc<AdminService>>,
    Admin(a): Admin,
    Params((id, secret_id)): Params<(String, String)>,
) -> Result<StatusCode, ApiError> {
    admin.secret_retire(&a, &id, &secret_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resources_list(
    State(admin): State<Arc<AdminService>>,
    _: Admin,
) -> Result<Json<Value>, ApiError> {
    let items: Vec<Value> = admin
        .resources_list()
        .await?
        .iter()
        .map(resource_json)
        .collect();
    Ok(Json(json!({"items": items})))
}

async fn resource_create(
    State(admin): State<Arc<AdminService>>,
    Admin(a): Admin,
    Body(input): Body<ResourceInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(resource_json(&admin.resource_create(&a, input).await?)),
    ))
}

async fn resource_get(
    State(admin): State<Arc<AdminService>>,
    _: Admin,
    Params(id): Params<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(resource_json(&admin.resource_get(&id).await?)))
}

async fn resource_update(
    State(admin): State<Arc<AdminService>>,
    Admin(a): Admin,
    Params(id): Params<String>,
    Body(patch): Body<ResourcePatch>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(resource_json(
        &admin.resource_update(&a, &id, patch).await?,
    )))
}

async fn resource_delete(
    State(admin): State<Arc<AdminService>>,
    Admin(a): Admin,
    Params(id): Params<String>,
) -> Result<StatusCode, ApiError> {
    admin.resource_delete(&a, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn keys_list(State(admin): State<Arc<AdminService>>, _: Admin) -> Json<Value> {
    Json(json!({"items": admin.keys_list()}))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotate {
    alg: Option<String>,
}

async fn keys_rotate(
    State(admin): State<Arc<AdminService>>,
    Admin(a): Admin,
    OptionalBody(input): OptionalBody<Rotate>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(json!({"items": admin.keys_rotate(&a, input.alg.as_deref()).await?})),
    ))
}

async fn audit_list(
    State(admin): State<Arc<AdminService>>,
    _: Admin,
    Q(page): Q<AuditPage>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(PAGE_DEFAULT);
    let items = admin
        .audit_list(page.before, page.q.as_deref(), limit)
        .await?;
    let next = if items.len() as i64 >= limit.clamp(1, PAGE_MAX) {
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(json!({"items": items, "next_before": next})))
}
