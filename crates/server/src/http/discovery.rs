//! Discovery (RFC 8414 authorization server metadata), the JWKS (RFC 7517), and health checks.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::assertion::AssertionAlg;
use serde_json::{Value, json};

use crate::app::App;
use crate::http::error::ApiError;

/// RFC 8414 §2 metadata, listing only what is implemented.
pub(crate) async fn metadata(State(app): State<App>) -> Json<Value> {
    let i = &app.settings.issuer;
    // Exactly what each endpoint accepts: a public client authenticates with its id alone (`none`) at the token
    // and revocation endpoints (RFC 7009 §2.1), never at introspection (RFC 7662 §2.1).
    let confidential = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    let with_none = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    ];
    // RFC 8414 §2: the algorithms private_key_jwt assertions may be signed with, per endpoint.
    let assertion_algs: Vec<&str> = AssertionAlg::ALL.iter().map(|a| a.name()).collect();
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/oauth2/authorize"),
        "token_endpoint": format!("{i}/oauth2/token"),
        "jwks_uri": format!("{i}/oauth2/jwks"),
        "introspection_endpoint": format!("{i}/oauth2/introspect"),
        "revocation_endpoint": format!("{i}/oauth2/revoke"),
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "token_endpoint_auth_methods_supported": with_none,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": confidential,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": with_none,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        // RFC 9449 §5.1: the algorithms DPoP proofs may be signed with (the same asymmetric set).
        "dpop_signing_alg_values_supported": assertion_algs,
        "scopes_supported": scopes(&app),
    }))
}

fn scopes(app: &App) -> Vec<String> {
    let mut all: Vec<String> = app
        .memory
        .registry
        .resources()
        .values()
        .flat_map(|r| r.scopes.to_vec())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// `GET /oauth2/jwks`: public keys only, cacheable for `jwks_max_age`. A node that has not read the database for
/// longer than `stale_while_unreachable` answers 503 rather than a key set that may lack a key another node
/// signs with (configuration makes `key_publish_delay` cover both delays).
pub(crate) async fn jwks(State(app): State<App>) -> Response {
    if app.feed.is_stale(app.settings.stale_while_unreachable) {
        return ApiError::Unavailable.into_response();
    }
    let mut r = Json(app.memory.keys.jwks(app.clock.now())).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={}", app.settings.jwks_max_age))
    {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers. Not ready at once while the change feed's last read failed (a load
/// balancer's check should not wait for a connection timeout), otherwise after a ping of at most 800 ms over the
/// control connections, which requests never hold: a node whose request pool is exhausted is busy, not
/// unreachable, and stays in the load balancer.
pub(crate) async fn readyz(State(app): State<App>) -> Response {
    let ping = async {
        if app.feed.is_down() {
            return Err(());
        }
        let control = app.store.control();
        match tokio::time::timeout(std::time::Duration::from_millis(800), control.ping()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    };
    match ping.await {
        // Serving does not wait for the clients to be in memory; `clients` says whether they are yet.
        Ok(()) => Json(json!({
            "status": "ready",
            "database": app.store.engine(),
            "clients": if app.memory.registry.is_loaded() { "in memory" } else { "loading" },
        }))
        .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "database": "unreachable"})),
        )
            .into_response(),
    }
}
