//! The agent's `metrics_listen`: `GET /metrics` in the Prometheus text format, rendered at scrape time from each
//! token source's counts (tokens fetched, served from memory, failed requests, seconds to expiry) and the
//! reloads; `GET /readyz`, 200 once every API holds a valid token, else 503, with each API's state in JSON.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keyward_client::Status;
use serde_json::{Map, Value, json};

use super::Agent;

/// `/metrics` and `/readyz`.
pub(super) fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .with_state(agent)
}

/// One metric per line and API, each with its help and type.
async fn metrics(State(agent): State<Arc<Agent>>) -> Response {
    let statuses: Vec<_> = agent
        .apis
        .iter()
        .map(|(name, api)| (name, api.source.status()))
        .collect();
    let mut text = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&Status) -> u64| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (api, status) in &statuses {
            // API names are [a-z0-9_-]: nothing in them needs escaping in a label value.
            let _ = writeln!(text, "{name}{{api=\"{api}\"}} {}", value(status));
        }
    };
    family(
        "keyward_agent_tokens_fetched_total",
        "counter",
        "Tokens received from the API's token endpoint.",
        &|s| s.fetched,
    );
    family(
        "keyward_agent_tokens_served_total",
        "counter",
        "Tokens handed out from memory (token mode and proxy mode).",
        &|s| s.served,
    );
    family(
        "keyward_agent_token_failures_total",
        "counter",
        "Token requests that failed: refused, busy or unreachable.",
        &|s| s.failures,
    );
    family(
        "keyward_agent_token_expiry_seconds",
        "gauge",
        "Seconds the token held may still be handed out (0 when none is held).",
        &|s| s.expires_in.map_or(0, |d| d.as_secs()),
    );
    family(
        "keyward_agent_token_valid",
        "gauge",
        "1 while the API holds a valid token.",
        &|s| u64::from(s.expires_in.is_some()),
    );
    let (ok, failed) = agent.reloads.get();
    let _ = writeln!(
        text,
        "# HELP keyward_agent_reloads_total Reloads of the credentials and the config file, by result.\n\
         # TYPE keyward_agent_reloads_total counter\n\
         keyward_agent_reloads_total{{result=\"ok\"}} {ok}\n\
         keyward_agent_reloads_total{{result=\"failed\"}} {failed}"
    );
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// Ready when every API holds a valid token.
async fn readyz(State(agent): State<Arc<Agent>>) -> Response {
    let mut apis = Map::new();
    let mut ready = true;
    for (name, api) in &agent.apis {
        let s = api.source.status();
        ready &= s.expires_in.is_some();
        apis.insert(
            name.clone(),
            json!({
                "token": s.expires_in.is_some(),
                "expires_in": s.expires_in.map(|d| d.as_secs()),
                "last_error": s.last_error,
            }),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut r = (
        status,
        axum::Json(json!({"ready": ready, "apis": Value::Object(apis)})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
