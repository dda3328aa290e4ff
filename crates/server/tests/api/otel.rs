//! `otlp_endpoint`: the real `keyward serve` exports its request spans over OTLP/HTTP to a tiny collector this test
//! runs on 127.0.0.1 (axum, `POST /v1/traces`, bodies kept), with `service.name` `keyward` and never a secret or
//! a token in what it sends; it sends the last spans when stopped with SIGTERM; and a collector that is down
//! costs the requests nothing.
//!
//! The bodies are OTLP protobuf. Rather than decoding them, the tests look for the exact bytes a field is encoded
//! as (tag, length, text), so `request` must be a span's name and `keyward` the value of `service.name`, not
//! merely text somewhere in the body.

use std::ffi::OsString;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::Value;

use crate::child::{SERVING, Served, token_request};

/// How long an export may take to arrive.
const WAIT: Duration = Duration::from_secs(10);

/// The bodies the collector received, in order.
type Bodies = Arc<Mutex<Vec<Vec<u8>>>>;

/// An OTLP/HTTP trace collector on 127.0.0.1: `POST /v1/traces` keeps the body and answers an empty (successful)
/// `ExportTraceServiceResponse`. Returns its base URL, as `otlp_endpoint` takes it.
async fn collector() -> (String, Bodies) {
    let bodies = Bodies::default();
    let router = axum::Router::new()
        .route(
            "/v1/traces",
            post(|State(bodies): State<Bodies>, body: Bytes| async move {
                bodies.lock().unwrap().push(body.to_vec());
                ([(CONTENT_TYPE, "application/x-protobuf")], Bytes::new())
            }),
        )
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), bodies)
}

/// A protobuf string (or bytes, or message) field: tag (wire type 2), one-byte length, the bytes.
fn field(number: u8, value: &[u8]) -> Vec<u8> {
    assert!(value.len() < 128, "a one-byte length");
    let mut out = vec![(number << 3) | 2, value.len() as u8];
    out.extend_from_slice(value);
    out
}

/// A `KeyValue` attribute whose value is the string `value`: `key` (field 1), then `value` (field 2), an
/// `AnyValue` whose `string_value` is field 1.
fn string_attribute(key: &str, value: &str) -> Vec<u8> {
    let mut out = field(1, key.as_bytes());
    out.extend(field(2, &field(1, value.as_bytes())));
    out
}

/// A server span named `name`: `Span.name` (field 5), then `Span.kind` (field 6, a varint) SPAN_KIND_SERVER (2).
fn server_span(name: &str) -> Vec<u8> {
    let mut out = field(5, name.as_bytes());
    out.extend([6 << 3, 2]);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Waits up to [`WAIT`] for a received body containing every one of `needles`, and returns it.
async fn wait_for_export(bodies: &Bodies, needles: &[Vec<u8>]) -> Vec<u8> {
    let start = Instant::now();
    loop {
        let found = bodies
            .lock()
            .unwrap()
            .iter()
            .find(|b| needles.iter().all(|n| contains(b, n)))
            .cloned();
        if let Some(body) = found {
            return body;
        }
        let received = bodies.lock().unwrap().len();
        assert!(
            start.elapsed() < WAIT,
            "no export with the request span after {WAIT:?} ({received} bodies received)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client_credentials token request as the first-start admin; returns the (secret, access token).
async fn get_token(served: &Served) -> (String, String) {
    let (id, secret) = served.admin();
    let r = token_request(&reqwest::Client::new(), &served.base, &id, &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    (secret, token)
}

/// What the export of a token request must hold: the `request` server span, the service name, and the span's
/// method and path.
fn request_span() -> Vec<Vec<u8>> {
    vec![
        server_span("request"),
        string_attribute("service.name", "keyward"),
        string_attribute("http.request.method", "POST"),
        string_attribute("url.path", "/oauth2/token"),
    ]
}

/// Fails if any received body holds one of `secrets`.
fn assert_no_secret(bodies: &Bodies, secrets: &[&str]) {
    for body in bodies.lock().unwrap().iter() {
        for secret in secrets {
            assert!(
                !contains(body, secret.as_bytes()),
                "a secret or token in an export"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_request_spans_to_the_otlp_endpoint() {
    let (endpoint, bodies) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let env: [(&str, OsString); 3] = [
        ("KEYWARD_DATA_DIR", dir.path().join("data").into()),
        ("KEYWARD_OTLP_ENDPOINT", endpoint.into()),
        // Batches leave every 100 ms instead of every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ];
    let served = Served::serve(std::iter::empty::<&str>(), env).keep(dir);
    let (secret, token) = get_token(&served).await;
    wait_for_export(&bodies, &request_span()).await;
    assert_no_secret(&bodies, &[&secret, &token]);
}

/// With batches due only after a minute, the span arrives because SIGTERM's graceful shutdown sends it.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_the_last_spans() {
    let (endpoint, bodies) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    // `otlp_endpoint` from the configuration file this time. The shell says its process id, which `exec` hands
    // on to keyward, so the test can signal it.
    let config = dir.path().join("keyward.toml");
    std::fs::write(&config, format!("otlp_endpoint = \"{endpoint}/\"\n")).unwrap();
    let mut command = Command::new("sh");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYWARD_") {
            command.env_remove(name);
        }
    }
    command
        .args(["-c", "echo \"test-child-pid=$$\"; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("KEYWARD_DATA_DIR", dir.path().join("data"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "60000");
    let mut served = Served::spawn(command, SERVING).keep(dir);
    let pid = served
        .wait_for("test-child-pid=")
        .trim()
        .trim_start_matches("test-child-pid=")
        .to_owned();
    let (secret, token) = get_token(&served).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        bodies.lock().unwrap().is_empty(),
        "an export before the shutdown: the schedule delay was not honoured"
    );
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    wait_for_export(&bodies, &request_span()).await;
    assert_no_secret(&bodies, &[&secret, &token]);
}

/// A collector that is down: requests are answered as usual, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_requests_nothing() {
    // A port nobody listens on once this listener is dropped.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let env: [(&str, OsString); 3] = [
        ("KEYWARD_DATA_DIR", dir.path().join("data").into()),
        ("KEYWARD_OTLP_ENDPOINT", endpoint.into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "20".into()),
    ];
    let mut served = Served::serve(std::iter::empty::<&str>(), env).keep(dir);
    let (id, secret) = served.admin();
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let started = Instant::now();
        let r = token_request(&http, &served.base, &id, &secret)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a request waited on the exporter"
        );
        // Long enough for the failed exports of the previous spans to run.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    served.process.assert_running();
}
