//! Proxy mode against an API of the test's own that can refuse chosen tokens: the path, query, body and `Host`
//! as the API sees them, the token in `Authorization` or in a `token_header`, a refused token replaced and the
//! request sent again when that is safe (and only then), large bodies streamed, 502 and 504.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode as Status};
use axum::response::{IntoResponse, Response};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Admin, agent, http, keyward_soon, plain_api, token_of};

/// Tokens the API answers 401 `invalid_token` for.
type Refused = Arc<Mutex<HashSet<String>>>;

/// The API: `/echo` sends the body back; `/scope` is always 401 `insufficient_scope`; `/slow` takes 3 s; any
/// other path describes the request it got.
async fn api(State(refused): State<Refused>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let token = header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .or_else(|| header("wm_sec.access_token"))
        .unwrap_or_default();
    let challenge = |code: &str| {
        (
            Status::UNAUTHORIZED,
            [(
                "www-authenticate",
                format!("Bearer realm=\"api\", error=\"{code}\""),
            )],
        )
            .into_response()
    };
    match uri.path() {
        "/scope" => return challenge("insufficient_scope"),
        "/slow" => tokio::time::sleep(Duration::from_secs(3)).await,
        _ => {}
    }
    if refused.lock().unwrap().contains(&token) {
        return challenge("invalid_token");
    }
    // Streamed back as it comes, whatever its size.
    if uri.path() == "/echo" {
        return Response::new(body);
    }
    let body = axum::body::to_bytes(body, 1024 * 1024).await.unwrap();
    axum::Json(json!({
        "method": method.as_str(),
        "target": uri.path_and_query().map(|p| p.as_str()),
        "host": header("host"),
        "authorization": header("authorization"),
        "wm_sec": header("wm_sec.access_token"),
        "flavor": header("metadata-flavor"),
        "body": String::from_utf8_lossy(&body),
    }))
    .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_replaces_refused_tokens_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let starting = keyward_soon(dir.path().join("keyward"), None);
    let refused: Refused = Arc::default();
    let upstream = crate::verify::serve(
        axum::Router::new()
            .fallback(api)
            .with_state(refused.clone()),
    )
    .await;
    let keyward = starting.await.unwrap();
    let admin = Admin::of(&keyward).await;
    admin.resource("https://api.example", "15m").await;
    let (id, secret) = admin.client("https://api.example", json!({})).await;
    let credentials = format!("client_id = \"{id}\"\nclient_secret = \"{secret}\"\n");
    let config = format!(
        "upstream_timeout = \"1s\"\n{}{credentials}api_url = \"{upstream}/\"\n{}{credentials}api_url = \"{upstream}\"\n\
         token_header = \"WM_SEC.ACCESS_TOKEN\"\n{}{credentials}api_url = \"http://127.0.0.1:9\"\n\
         {}{credentials}api_url = \"{upstream}\"\nproxy_requires_header = false\n",
        plain_api("api", &keyward.base, "https://api.example"),
        plain_api("wm", &keyward.base, "https://api.example"),
        plain_api("down", &keyward.base, "https://api.example"),
        plain_api("open", &keyward.base, "https://api.example"),
    );
    let agent = agent(dir.path(), &config, &[]);
    let http = http();
    let (first, _) = token_of(&http, &agent, "api").await;

    // What the API sees: its own path and query, its own Host, the agent's token in place of the app's header.
    let r = http
        .get(agent.url("/api/things/7?a=1&b=two"))
        .bearer_auth("the-apps-own")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["target"], "/things/7?a=1&b=two");
    assert_eq!(seen["host"], upstream.trim_start_matches("http://"));
    assert_eq!(seen["authorization"], format!("Bearer {first}"));
    let r = http
        .get(agent.url("/wm/x"))
        .header("WM_SEC.ACCESS_TOKEN", "the-apps-own")
        .send()
        .await
        .unwrap();
    let seen: Value = r.json().await.unwrap();
    let (wm, _) = token_of(&http, &agent, "wm").await;
    assert_eq!(
        (seen["wm_sec"].as_str(), &seen["authorization"]),
        (Some(wm.as_str()), &Value::Null)
    );

    // Proxy mode needs Metadata-Flavor too, so a redirect an app follows or a URL it was tricked into fetching
    // cannot make an authenticated call; an API may turn that off, and then the bare request passes.
    let bare = super::bare_http();
    let r = bare.get(agent.url("/api/x")).send().await.unwrap();
    super::refused(r, StatusCode::FORBIDDEN, "proxy_requires_header").await;
    let r = bare.get(agent.url("/open/x")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http.get(agent.url("/open/x")).send().await.unwrap();
    let seen: Value = r.json().await.unwrap();
    assert_eq!(
        seen["flavor"],
        Value::Null,
        "the header stays with the agent"
    );
    // A matrix-parameter dot segment, which servlet containers read as `..`, never leaves the agent.
    let r = http.get(agent.url("/api/..;/admin")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The API refuses the token: an idempotent request with a small body goes again, body and all, with a new one.
    refused.lock().unwrap().insert(first.clone());
    let r = http
        .put(agent.url("/api/orders/1"))
        .body("replayed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["body"], "replayed");
    let (second, _) = token_of(&http, &agent, "api").await;
    assert_ne!(second, first);
    assert_eq!(seen["authorization"], format!("Bearer {second}"));

    // A POST is not sent twice: the 401 goes back to the app, and the next request has a fresh token.
    refused.lock().unwrap().insert(second.clone());
    let r = http
        .post(agent.url("/api/orders"))
        .body("once")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let r = http.get(agent.url("/api/orders/1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (third, _) = token_of(&http, &agent, "api").await;
    assert!(third != second && third != first);

    // Another 401 (a scope missing) is the API's answer to pass on, and the token stays.
    let r = http.get(agent.url("/api/scope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(token_of(&http, &agent, "api").await.0, third);

    // 4 MiB each way, streamed.
    let big: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let r = http
        .post(agent.url("/api/echo"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap() == big, "the body came back whole");

    // An API that is down is 502; one that is slow, 504.
    let r = http.get(agent.url("/down/x")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad_gateway");
    let r = http.get(agent.url("/api/slow")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
}
