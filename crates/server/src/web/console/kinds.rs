//! The console's keys without a secret: reading the create form's kind (secret, public key, federated) and DPoP
//! choice, the page shown once such a key is made, what the key page shows of its public keys, federated
//! credentials and DPoP requirement, and the forms that add and remove them one at a time (rotation) and set DPoP.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::form::{Params, encode_component};
use serde_json::Value;

use super::{Console, Frame, key_error, text};
use crate::app::App;
use crate::service::admin::ClientView;
use crate::service::api_keys::KeyError;
use crate::service::api_keys::{FederatedForm, KeyKind, KeyRequest, KeyView};
use crate::web::pages::render;
use crate::web::session::see_other;

/// The key forms' multi-line text boxes: a pasted JWK (or PEM), and claim conditions one a line.
pub(crate) const TEXT_BOXES: [&str; 2] = ["jwk", "conditions"];

/// What the create form sent: name, environment, scopes, the key's kind with its fields, and DPoP.
pub(crate) fn key_request(form: &Params) -> KeyRequest {
    let kind = match text(form, "kind").as_str() {
        "public_key" => KeyKind::PublicKey(text(form, "jwk")),
        "federated" => KeyKind::Federated(federated_form(form)),
        // Absent (an older form) or anything else: the secret key it always was.
        _ => KeyKind::Secret,
    };
    KeyRequest {
        name: text(form, "name"),
        environment: text(form, "environment"),
        scopes: form.all("scope").map(str::to_owned).collect(),
        kind,
        dpop: checked(form, "dpop"),
    }
}

fn federated_form(form: &Params) -> FederatedForm {
    FederatedForm {
        name: text(form, "credential_name"),
        issuer: text(form, "issuer"),
        audience: text(form, "audience"),
        subject: text(form, "subject"),
        conditions: text(form, "conditions"),
    }
}

/// Whether a checkbox was ticked (browsers send `on` unless it has a value).
fn checked(form: &Params, name: &str) -> bool {
    !text(form, name).is_empty()
}

/// The create form's kind and its fields, as typed, to show the form again after a mistake.
pub(crate) struct KindFields {
    /// `secret`, `public_key` or `federated`.
    pub kind: &'static str,
    pub jwk: String,
    pub federated: FederatedForm,
    pub dpop: bool,
    pub jwk_error: Option<String>,
    pub federated_error: Option<String>,
    /// Keyward's issuer URL: the audience to ask GitHub Actions for, in the examples.
    pub issuer: String,
}

impl KindFields {
    /// The fields of `request`, with no error yet.
    pub(crate) fn new(app: &App, request: &KeyRequest) -> Self {
        let (kind, jwk, federated) = match &request.kind {
            KeyKind::Secret => ("secret", String::new(), FederatedForm::default()),
            KeyKind::PublicKey(t) => ("public_key", t.clone(), FederatedForm::default()),
            KeyKind::Federated(f) => ("federated", String::new(), f.clone()),
        };
        KindFields {
            kind,
            jwk,
            federated,
            dpop: request.dpop,
            jwk_error: None,
            federated_error: None,
            issuer: app.settings.issuer.clone(),
        }
    }
}

/// A public key as the key page lists it.
pub(crate) struct PublicKeyLine {
    pub kid: String,
    pub alg: String,
    /// `EC P-256`, `OKP Ed25519`, `RSA`.
    pub key_type: String,
}

/// A federated credential as the key page lists it.
pub(crate) struct FederatedLine {
    pub name: String,
    pub issuer: String,
    pub audience: String,
    /// `sub=…` and each claim condition.
    pub conditions: Vec<String>,
}

/// How a key authenticates, as its pages show it.
pub(crate) struct Credentials {
    /// In words: "Secret", "Public key (private_key_jwt)", "Federated (workload identity)".
    pub kind: &'static str,
    /// Whether it holds secrets (the secrets table and the rotate form show only then).
    pub uses_secret: bool,
    /// Whether it has inline public keys (their table and forms show only then).
    pub has_keys: bool,
    pub public_keys: Vec<PublicKeyLine>,
    /// Where an operator-made key's keys are published (the console never sets it).
    pub jwks_uri: Option<String>,
    pub federated: Vec<FederatedLine>,
    pub dpop: bool,
}

/// How a key authenticates, in words: by its secrets first (a key made in the console has one kind only).
pub(crate) fn kind_of(c: &ClientView) -> &'static str {
    if c.auth_methods
        .iter()
        .any(|m| m.starts_with("client_secret"))
    {
        "Secret"
    } else if c.jwks.is_some() || c.jwks_uri.is_some() {
        "Public key (private_key_jwt)"
    } else if !c.federated_credentials.is_empty() {
        "Federated (workload identity)"
    } else {
        "No credential"
    }
}

impl From<&KeyView> for Credentials {
    fn from(k: &KeyView) -> Self {
        let c = &k.client;
        let uses_secret = c
            .auth_methods
            .iter()
            .any(|m| m.starts_with("client_secret"));
        let member =
            |key: &Value, m: &str| key.get(m).and_then(Value::as_str).unwrap_or("").to_owned();
        let keys: Vec<Value> = c
            .jwks
            .as_ref()
            .and_then(|j| j.get("keys"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let public_keys = keys
            .iter()
            .map(|key| PublicKeyLine {
                kid: member(key, "kid"),
                alg: member(key, "alg"),
                key_type: format!("{} {}", member(key, "kty"), member(key, "crv"))
                    .trim()
                    .to_owned(),
            })
            .collect();
        let federated = c
            .federated_credentials
            .iter()
            .map(|f| FederatedLine {
                name: f.name.clone(),
                issuer: f.issuer.clone(),
                audience: f.audience.clone(),
                conditions: f
                    .subject
                    .iter()
                    .map(|s| format!("sub={s}"))
                    .chain(f.claims.iter().map(|(n, v)| format!("{n}={v}")))
                    .collect(),
            })
            .collect::<Vec<_>>();
        Credentials {
            kind: kind_of(c),
            uses_secret,
            has_keys: c.jwks.is_some(),
            public_keys,
            jwks_uri: c.jwks_uri.clone(),
            federated,
            dpop: c.dpop_bound_access_tokens,
        }
    }
}

#[derive(Template)]
#[template(path = "console/key_keyless.html")]
struct KeylessPage {
    frame: Frame,
    id: String,
    path: String,
    name: String,
    creds: Credentials,
    token_url: String,
    environment: String,
}

/// The page shown once a key without a secret is made: its client id, what it authenticates with, how to use it.
pub(crate) fn created(app: &App, c: &Console, key: KeyView) -> Response {
    render(
        StatusCode::CREATED,
        &KeylessPage {
            frame: c.frame(),
            path: encode_component(&key.client.client_id),
            creds: Credentials::from(&key),
            id: key.client.client_id,
            name: key.client.name,
            token_url: format!("{}/oauth2/token", app.settings.issuer),
            environment: key.environment,
        },
    )
}

/// Back to the key's page after a change.
fn to_key(id: &str) -> Response {
    see_other(&format!("/console/keys/{}", encode_component(id)))
}

/// After one change of the key: back to its page, or the refusal said on a page of its own.
fn done(id: &str, result: Result<KeyView, KeyError>) -> Response {
    match result {
        Ok(_) => to_key(id),
        Err(e) => key_error(e),
    }
}

/// `POST /console/keys/{id}/public-keys`: adds a public key (rotation's first step).
pub(crate) async fn add_public_key(
    State(app): State<App>,
    c: Console,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match c.form_with_text(&app, &body, &TEXT_BOXES) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let jwk = text(&form, "jwk");
    let account = &c.account.account_id;
    let added = app
        .api_keys
        .key_add_public_key(&c.actor, account, &id, &jwk);
    done(&id, added.await)
}

/// `POST /console/keys/{id}/public-keys/remove`: removes the public key named by `kid`, never the last one.
pub(crate) async fn remove_public_key(
    State(app): State<App>,
    c: Console,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match c.form(&app, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let kid = text(&form, "kid");
    let account = &c.account.account_id;
    let removed = app
        .api_keys
        .key_remove_public_key(&c.actor, account, &id, &kid);
    done(&id, removed.await)
}

/// `POST /console/keys/{id}/federated`: adds a federated credential.
pub(crate) async fn add_federated(
    State(app): State<App>,
    c: Console,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match c.form_with_text(&app, &body, &TEXT_BOXES) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let credential = federated_form(&form);
    let account = &c.account.account_id;
    let added = app
        .api_keys
        .key_add_federated(&c.actor, account, &id, &credential);
    done(&id, added.await)
}

/// `POST /console/keys/{id}/federated/remove`: removes the federated credential named by `name`, never the last.
pub(crate) async fn remove_federated(
    State(app): State<App>,
    c: Console,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match c.form(&app, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let name = text(&form, "name");
    let account = &c.account.account_id;
    let removed = app
        .api_keys
        .key_remove_federated(&c.actor, account, &id, &name);
    done(&id, removed.await)
}

/// `POST /console/keys/{id}/dpop`: requires DPoP-bound tokens (the `dpop` box ticked) or stops requiring them.
pub(crate) async fn set_dpop(
    State(app): State<App>,
    c: Console,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match c.form(&app, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let required = checked(&form, "dpop");
    let account = &c.account.account_id;
    let set = app.api_keys.key_set_dpop(&c.actor, account, &id, required);
    done(&id, set.await)
}
