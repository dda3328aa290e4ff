//! The account holder's pages: API keys (list, create with the secret shown once, rotate with an overlap,
//! disable, enable, delete after a confirmation) and the apps the account authorized. Keys of the other kinds
//! (public key, federated) and DPoP are read and shown by `kinds.rs`.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::console::cache_advice;

use super::kinds::{Credentials, KindFields, TEXT_BOXES, created, key_request, kind_of};
use super::usage::{Chart, advice_text};
use super::{Console, Frame, key_error, text, when, when_or_never};
use crate::app::App;
use crate::service::api_keys::{
    FederatedForm, KeyFormError, KeyRequest, KeyView, MAX_KEYS_PER_ACCOUNT,
};
use crate::service::consents::Authorized;
use crate::service::{ApiKeys, Consents};
use crate::web::pages::Said;
use crate::web::pages::render;
use crate::web::session::{see_other, unavailable};

type Shared = State<App>;

/// A key as a row of the list.
pub(crate) struct KeyRow {
    pub id: String,
    /// The id as a path segment (an operator-made key's id may hold `/`, `?` or `#`).
    pub path: String,
    pub name: String,
    pub created: String,
    pub last_used: String,
    pub environment: String,
    pub environment_name: String,
    pub scopes: Vec<String>,
    pub enabled: bool,
    /// How it authenticates, in words.
    pub kind: &'static str,
}

impl From<&KeyView> for KeyRow {
    fn from(k: &KeyView) -> Self {
        KeyRow {
            id: k.client.client_id.clone(),
            path: keyward_core::form::encode_component(&k.client.client_id),
            name: k.client.name.clone(),
            created: when(k.client.created_at),
            // Uses are recorded per secret; a key without one has its use in its usage chart only.
            last_used: match (&k.client.secrets, k.last_used_at) {
                (Some(s), None) if s.is_empty() => "see its usage".into(),
                (_, t) => when_or_never(t),
            },
            environment: k.environment.clone(),
            environment_name: k.environment_name.clone(),
            scopes: k.client.scopes.clone(),
            enabled: k.client.enabled,
            kind: kind_of(&k.client),
        }
    }
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    frame: Frame,
    keys: Vec<KeyRow>,
    may_create: bool,
}

/// `GET /console/keys`.
pub(crate) async fn list(State(api_keys): State<Arc<ApiKeys>>, c: Console) -> Response {
    match api_keys.keys_of(&c.account.account_id).await {
        Ok(keys) => render(
            StatusCode::OK,
            &KeysPage {
                frame: c.frame(),
                keys: keys.iter().map(KeyRow::from).collect(),
                may_create: !api_keys.key_scopes_now(&c.account).is_empty(),
            },
        ),
        Err(e) => unavailable(e),
    }
}

/// A scope checkbox of the create form.
pub(crate) struct ScopeOption {
    pub name: String,
    pub words: String,
    pub checked: bool,
}

/// An environment (resource) of the create form, with its scopes.
pub(crate) struct EnvOption {
    pub identifier: String,
    pub name: String,
    pub selected: bool,
    pub scopes: Vec<ScopeOption>,
}

#[derive(Template)]
#[template(path = "console/key_new.html")]
struct NewKeyPage {
    frame: Frame,
    name: String,
    environments: Vec<EnvOption>,
    name_error: Option<String>,
    environment_error: Option<String>,
    scopes_error: Option<String>,
    form_error: Option<String>,
    /// The key's kind, its fields and DPoP.
    kinds: KindFields,
}

impl NewKeyPage {
    /// The form for `c`'s allowance, filled with what was sent (`request`), and its errors.
    fn new(app: &App, c: &Console, request: &KeyRequest) -> Self {
        let resources = app.memory.registry.resources();
        let allowance = app.api_keys.key_scopes_now(&c.account);
        let only = allowance.len() == 1;
        let environments = allowance
            .iter()
            .map(|(identifier, scopes)| {
                let resource = resources.get(identifier);
                let selected = only || request.environment == *identifier;
                EnvOption {
                    identifier: identifier.clone(),
                    name: resource.map_or_else(|| identifier.clone(), |r| r.name.clone()),
                    selected,
                    scopes: scopes
                        .iter()
                        .map(|s| ScopeOption {
                            name: s.clone(),
                            words: resource
                                .and_then(|r| r.scope_details.get(s))
                                .and_then(|d| d.description.clone())
                                .unwrap_or_default(),
                            checked: selected && request.scopes.contains(s),
                        })
                        .collect(),
                }
            })
            .collect();
        NewKeyPage {
            frame: c.frame(),
            name: request.name.clone(),
            environments,
            name_error: None,
            environment_error: None,
            scopes_error: None,
            form_error: None,
            kinds: KindFields::new(app, request),
        }
    }
}

/// `GET /console/keys/new`.
pub(crate) async fn new(State(app): Shared, c: Console) -> Response {
    if let Some(r) = super::must_enrol(&app, &c).await {
        return r;
    }
    render(
        StatusCode::OK,
        &NewKeyPage::new(&app, &c, &KeyRequest::default()),
    )
}

#[derive(Template)]
#[template(path = "console/secret.html")]
struct SecretPage {
    frame: Frame,
    heading: &'static str,
    id: String,
    /// The id as a path segment.
    path: String,
    name: String,
    secret: String,
    token_url: String,
    environment: String,
    old_expire: Option<String>,
    /// Whether the key requires DPoP (the plain `curl` is then refused).
    dpop: bool,
}

impl SecretPage {
    /// The guide to using the key, its snippets filled in with the key's environment.
    fn guide_link(&self) -> String {
        format!(
            "/console/guide?resource={}",
            keyward_core::form::encode_component(&self.environment)
        )
    }
}

/// `POST /console/keys`: creates a key and shows its secret once; a mistake shows the form again with what was
/// typed and a message beside the field.
pub(crate) async fn create(State(app): Shared, c: Console, body: Bytes) -> Response {
    if let Some(r) = super::must_enrol(&app, &c).await {
        return r;
    }
    let form = match c.form_with_text(&app, &body, &TEXT_BOXES) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let request = key_request(&form);
    let mut page = NewKeyPage::new(&app, &c, &request);
    let status = match app.api_keys.key_create(&c.actor, &c.account, request).await {
        // A key without a secret (public key, federated): its own page, which shows how it authenticates.
        Ok((key, None)) => return created(&app, &c, key),
        Ok((key, Some(secret))) => {
            return render(
                StatusCode::CREATED,
                &SecretPage {
                    frame: c.frame(),
                    heading: "Your new API key",
                    path: keyward_core::form::encode_component(&key.client.client_id),
                    id: key.client.client_id,
                    name: key.client.name,
                    secret,
                    token_url: format!("{}/oauth2/token", app.settings.issuer),
                    environment: key.environment,
                    old_expire: None,
                    dpop: key.client.dpop_bound_access_tokens,
                },
            );
        }
        Err(KeyFormError::NameTaken) => {
            page.name_error = Some("This account already has a key with this name.".into());
            StatusCode::CONFLICT
        }
        Err(KeyFormError::Name(m)) => {
            page.name_error = Some(m);
            StatusCode::BAD_REQUEST
        }
        Err(KeyFormError::Environment(m)) => {
            page.environment_error = Some(m);
            StatusCode::BAD_REQUEST
        }
        Err(KeyFormError::Scopes(m)) => {
            page.scopes_error = Some(m);
            StatusCode::BAD_REQUEST
        }
        Err(KeyFormError::PublicKey(m)) => {
            page.kinds.jwk_error = Some(m);
            StatusCode::BAD_REQUEST
        }
        Err(KeyFormError::Federated(m)) => {
            page.kinds.federated_error = Some(m);
            StatusCode::BAD_REQUEST
        }
        Err(KeyFormError::TooMany) => {
            page.form_error = Some(format!(
                "You have {MAX_KEYS_PER_ACCOUNT} keys, the most an account may hold. Delete one you no longer use first."
            ));
            StatusCode::CONFLICT
        }
        // Anything else the admin service refused (a resource changed while the form was open) is said above it.
        Err(KeyFormError::Admin(e)) => match crate::web::pages::said(&e) {
            Said::Refused(r, message) => {
                page.form_error = Some(message);
                crate::web::pages::refusal_status(r).0
            }
            _ => return unavailable(e),
        },
    };
    render(status, &page)
}

/// A secret of a key, as its page lists it.
pub(crate) struct SecretLine {
    pub hint: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub live: bool,
}

#[derive(Template)]
#[template(path = "console/key.html")]
struct KeyPage {
    frame: Frame,
    key: KeyRow,
    secrets: Vec<SecretLine>,
    chart: Chart,
    advice: Option<String>,
    /// How it authenticates: its secrets, public keys or federated credentials, and DPoP.
    creds: Credentials,
    /// The add-a-credential form's empty fields, and Keyward's issuer URL for its examples.
    blank: FederatedForm,
    issuer: String,
}

/// `GET /console/keys/{id}`: the key, its secrets (or public keys, or federated credentials), rotate / disable /
/// delete, and its usage over a week.
pub(crate) async fn show(State(app): Shared, c: Console, Path(id): Path<String>) -> Response {
    let key = match app.api_keys.key_of(&c.account.account_id, &id).await {
        Ok(k) => k,
        Err(e) => return key_error(e),
    };
    let series = match app.admin.usage_series(&id, 7 * 24).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let now = app.clock.now();
    let last_day: i64 = series.iter().rev().take(24).map(|(_, n)| n).sum();
    let ttl = app
        .memory
        .registry
        .resources()
        .get(&key.environment)
        .map_or(0, |r| r.access_token_ttl);
    let secrets = key
        .client
        .secrets
        .iter()
        .flatten()
        .map(|s| SecretLine {
            hint: s.hint.clone(),
            created: when(s.created_at),
            last_used: when_or_never(s.last_used_at),
            expires: s.expires_at.map_or_else(
                || "does not expire".into(),
                |t| {
                    if t > now {
                        format!("retires {}", when(t))
                    } else {
                        format!("retired {}", when(t))
                    }
                },
            ),
            live: s.expires_at.is_none_or(|t| t > now),
        })
        .collect();
    let mut row = KeyRow::from(&key);
    if key.client.secrets.as_ref().is_some_and(Vec::is_empty) {
        // A key without secrets: its latest hour with tokens, from the chart's counts.
        let hour = series.iter().rev().find(|(_, n)| *n > 0).map(|(t, _)| *t);
        row.last_used = hour.map_or_else(
            || "not in the last 7 days".into(),
            |t| format!("{} (hour)", when(t)),
        );
    }
    render(
        StatusCode::OK,
        &KeyPage {
            frame: c.frame(),
            chart: Chart::new(&key.client.name, &series),
            advice: cache_advice(last_day, ttl).map(|a| advice_text(&key.client.name, a)),
            key: row,
            creds: Credentials::from(&key),
            blank: FederatedForm::default(),
            issuer: app.settings.issuer.clone(),
            secrets,
        },
    )
}

/// The overlap choices of a rotation, seconds: how long the older secrets keep working.
const OVERLAPS: [i64; 4] = [0, 3_600, 86_400, 7 * 86_400];

/// `POST /console/keys/{id}/rotate`: a new secret, shown once; the older ones retire after the chosen overlap.
pub(crate) async fn rotate(
    State(app): Shared,
    c: Console,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match c.form(&app, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    // An overlap outside the offered choices (a forged form) is the default day.
    let overlap = text(&form, "overlap")
        .parse::<i64>()
        .ok()
        .filter(|o| OVERLAPS.contains(o))
        .unwrap_or(86_400);
    let key = match app.api_keys.key_of(&c.account.account_id, &id).await {
        Ok(k) => k,
        Err(e) => return key_error(e),
    };
    match app
        .api_keys
        .key_rotate(&c.actor, &c.account.account_id, &id, overlap)
        .await
    {
        Ok(new) => render(
            StatusCode::CREATED,
            &SecretPage {
                frame: c.frame(),
                heading: "Your key's new secret",
                path: keyward_core::form::encode_component(&new.client_id),
                id: new.client_id,
                name: key.client.name,
                secret: new.client_secret,
                token_url: format!("{}/oauth2/token", app.settings.issuer),
                environment: key.environment,
                old_expire: new.old_secrets_expire_at.map(when),
                dpop: key.client.dpop_bound_access_tokens,
            },
        ),
        Err(e) => key_error(e),
    }
}

async fn set_enabled(app: &App, c: &Console, id: &str, body: &[u8], enabled: bool) -> Response {
    if let Err(r) = c.form(app, body) {
        return r;
    }
    match app
        .api_keys
        .key_set_enabled(&c.actor, &c.account, id, enabled)
        .await
    {
        Ok(()) => see_other(&format!(
            "/console/keys/{}",
            keyward_core::form::encode_component(id)
        )),
        Err(e) => key_error(e),
    }
}

/// `POST /console/keys/{id}/disable`: its secrets stop getting tokens, and its tokens stop passing
/// introspection, until it is enabled again.
pub(crate) async fn disable(
    State(app): Shared,
    c: Console,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    set_enabled(&app, &c, &id, &body, false).await
}

/// `POST /console/keys/{id}/enable`.
pub(crate) async fn enable(
    State(app): Shared,
    c: Console,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    set_enabled(&app, &c, &id, &body, true).await
}

#[derive(Template)]
#[template(path = "console/key_delete.html")]
struct DeletePage {
    frame: Frame,
    key: KeyRow,
}

/// `GET /console/keys/{id}/delete`: asks for confirmation.
pub(crate) async fn confirm_delete(
    State(api_keys): State<Arc<ApiKeys>>,
    c: Console,
    Path(id): Path<String>,
) -> Response {
    match api_keys.key_of(&c.account.account_id, &id).await {
        Ok(k) => render(
            StatusCode::OK,
            &DeletePage {
                frame: c.frame(),
                key: KeyRow::from(&k),
            },
        ),
        Err(e) => key_error(e),
    }
}

/// `POST /console/keys/{id}/delete`: the key and its secrets are gone; its tokens stop passing introspection.
pub(crate) async fn delete(
    State(app): Shared,
    c: Console,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = c.form(&app, &body) {
        return r;
    }
    match app
        .api_keys
        .key_delete(&c.actor, &c.account.account_id, &id)
        .await
    {
        Ok(()) => see_other("/console/keys"),
        Err(e) => key_error(e),
    }
}

#[derive(Template)]
#[template(path = "console/apps.html")]
struct AppsPage {
    frame: Frame,
    apps: Vec<Authorized>,
}

/// `GET /console/apps`: the apps the account authorized (delegated access), each revocable.
pub(crate) async fn apps(State(consents): State<Arc<Consents>>, c: Console) -> Response {
    match consents.authorized_apps(&c.account.account_id).await {
        Ok(apps) => render(
            StatusCode::OK,
            &AppsPage {
                frame: c.frame(),
                apps,
            },
        ),
        Err(e) => unavailable(e),
    }
}

/// `POST /console/apps/revoke`: withdraws consent to an app and revokes what it holds.
pub(crate) async fn revoke_app(State(app): Shared, c: Console, body: Bytes) -> Response {
    let form = match c.form(&app, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let client_id = text(&form, "client_id");
    match app
        .consents
        .consent_withdraw(&c.actor, &c.account.account_id, &client_id)
        .await
    {
        // Already gone (a second click): the page shows the current list either way.
        Ok(()) => see_other("/console/apps"),
        // Already gone (a second click), or refused: the page shows the current list either way.
        Err(e) => match crate::web::pages::said(&e) {
            Said::Refused(..) => see_other("/console/apps"),
            _ => unavailable(e),
        },
    }
}
