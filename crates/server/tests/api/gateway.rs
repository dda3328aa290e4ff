//! `keyward gateway` in front of examples/orders-api (served plain): a real Keyward, a real gateway and a real
//! upstream, each on 127.0.0.1:0. Every bad token gets the RFC 6750 answer; the upstream sees the verified
//! identity and never the token or a caller's `X-Keyward-*` headers; rotation, revocation, 502 and 504.

use std::time::Duration;

use keyward::gateway::{Gateway, config};
use keyward_core::jwt::AccessTokenClaims;
use keyward_core::resource::SigningAlg;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::TestApp;
use crate::verify::{UAT, assert_bearer, forgeries, serve, walley_clients};

/// Starts a gateway from a config file's text; returns its base URL.
async fn gateway(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let config = config::load(&path, Some("127.0.0.1:0")).unwrap();
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gw = Gateway::new(config).unwrap();
    tokio::spawn(keyward::gateway::serve(
        gw,
        listener,
        std::future::pending(),
    ));
    base
}

fn config_text(app: &TestApp, upstream: &str, introspection: (&str, &str)) -> String {
    format!(
        r#"
upstream = "{upstream}"
issuer = "{issuer}"
audience = "{UAT}"
token_header = "WM_SEC.ACCESS_TOKEN"
jwks_min_refetch = "0s"
upstream_timeout = "1s"
introspection_client_id = "{id}"
introspection_client_secret = "{secret}"
introspection_cache = "0s"

[[route]]
methods = ["GET"]
path = "/manage/orders/{{id}}"
scopes = ["orders:read"]

[[route]]
methods = ["POST"]
path = "/manage/orders/{{id}}/cancel"
scopes = ["orders:write"]
introspect = true

[[route]]
path = "/health"
public = true

[[route]]
methods = ["POST"]
path = "/echo"
scopes = ["orders:read"]

[[route]]
path = "/slow"
scopes = ["orders:read"]
"#,
        issuer = app.app.settings.issuer,
        id = introspection.0,
        secret = introspection.1,
    )
}

/// The upstream: orders-api served plain, with an echo route and a slow route added for the proxy's own tests.
fn upstream() -> axum::Router {
    orders_api::plain()
        .route(
            "/echo",
            axum::routing::post(|body: axum::body::Bytes| async move { body }),
        )
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
}

/// Sends `GET path` byte for byte and returns the status code.
async fn raw_status(base: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

/// A token signed by the server's own key with chosen times: for expiry tests without waiting.
fn signed(app: &TestApp, client: &str, iat: i64, exp: i64) -> String {
    let claims = AccessTokenClaims {
        iss: app.app.settings.issuer.clone(),
        sub: client.into(),
        aud: UAT.into(),
        exp,
        iat,
        jti: "test-jti".into(),
        client_id: client.into(),
        scope: Some("orders:read orders:write".into()),
        nbf: None,
        cnf: None,
    };
    app.app
        .memory
        .keys
        .sign(SigningAlg::ES256, &claims, app.clock.now())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_protects_an_api_in_any_language() {
    let app = TestApp::sqlite().await;
    let [(rw, rw_secret), (ro, ro_secret), (prod, prod_secret)] = walley_clients(&app).await;
    let (api_id, api_secret) = app
        .client(json!({"name": "gateway", "resources": [], "serves_resources": [UAT]}))
        .await;
    let api = serve(upstream()).await;
    let gw = gateway(&config_text(&app, &api, (&api_id, &api_secret))).await;
    let order = format!("{gw}/manage/orders/0f05ebc2");
    let token = app.access_token(&rw, &rw_secret, &[]).await;

    // A valid token: the upstream sees the identity, not the token; spoofed identity headers are replaced.
    let r = app
        .http
        .get(&order)
        .bearer_auth(&token)
        .header("X-Keyward-Client-Id", "someone-else")
        .header("X-Keyward-Scope", "everything")
        .header("X-Keyward-Admin", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let seen = &body["seen"];
    assert_eq!(seen["x-keyward-client-id"], rw.as_str());
    assert_eq!(seen["x-keyward-subject"], rw.as_str());
    assert_eq!(seen["x-keyward-scope"], "orders:read orders:write");
    assert_eq!(seen["authorization"], Value::Null);
    assert_eq!(body["merchant"], rw.as_str());

    // WM_SEC.ACCESS_TOKEN works where configured, and does not reach the upstream either.
    let r = app
        .http
        .get(&order)
        .header("WM_SEC.ACCESS_TOKEN", &token)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["seen"]["wm_sec.access_token"], Value::Null);
    assert_eq!(body["seen"]["x-keyward-client-id"], rw.as_str());

    // A public route needs no token, and spoofed identity headers never arrive.
    let r = app
        .http
        .get(format!("{gw}/health"))
        .header("X-Keyward-Client-Id", "spoof")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");

    // Every bad token: the RFC 6750 answer, from the gateway.
    let get = |t: String| app.http.get(&order).bearer_auth(t).send();
    assert_bearer(
        app.http.get(&order).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        None,
    )
    .await;
    let now = app.clock.now();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let other = TestApp::sqlite().await;
    let [(other_rw, other_secret), ..] = walley_clients(&other).await;
    let mut bad = vec![
        (signed(&app, &rw, now - 2_000, now - 1_000), "token expired"),
        (
            app.access_token(&prod, &prod_secret, &[]).await,
            "wrong audience",
        ),
        (
            other.access_token(&other_rw, &other_secret, &[]).await,
            "unknown key",
        ),
    ];
    bad.extend(forgeries(&app, &token).await);
    for (t, why) in bad {
        let e = assert_bearer(
            get(t).await.unwrap(),
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
        )
        .await;
        assert_eq!(e["error_description"], why);
    }
    let r = app
        .http
        .get(format!("{order}?access_token={token}"))
        .send()
        .await
        .unwrap();
    assert_bearer(r, StatusCode::BAD_REQUEST, Some("invalid_request")).await;
    // Missing scope: cancelling needs orders:write.
    let read_only = app.access_token(&ro, &ro_secret, &[]).await;
    let r = app
        .bearer(
            reqwest::Method::POST,
            &format!("{order}/cancel"),
            &read_only,
        )
        .await;
    assert_bearer(r, StatusCode::FORBIDDEN, Some("insufficient_scope")).await;

    // Revocation: the cancel route introspects, so a revoked token stops there at once.
    let r = app
        .bearer(reqwest::Method::POST, &format!("{order}/cancel"), &token)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.revoke(&rw, &rw_secret, &token).await;
    let r = app
        .bearer(reqwest::Method::POST, &format!("{order}/cancel"), &token)
        .await;
    assert_bearer(r, StatusCode::UNAUTHORIZED, Some("invalid_token")).await;

    // Rotation on the server is picked up without restarting the gateway.
    app.rotate_and_activate("ES256").await;
    let rotated = signed(&app, &rw, now, now + 900);
    assert_ne!(
        jsonwebtoken::decode_header(&rotated).unwrap().kid.unwrap(),
        kid
    );
    assert_eq!(get(rotated).await.unwrap().status(), StatusCode::OK);

    // Routes: unknown paths, other methods, and paths spelled to slip past a route.
    let fresh = signed(&app, &rw, now, now + 900);
    let r = app
        .bearer(reqwest::Method::GET, &format!("{gw}/admin"), &fresh)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.bearer(reqwest::Method::DELETE, &order, &fresh).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET");
    // Sent raw: an HTTP client library would normalise these before sending.
    for sneaky in [
        "/health/..%2Fmanage/orders/1",
        "/health/%2e%2e/echo",
        "/health/../manage/orders/1",
        "//manage/orders/1",
    ] {
        assert_eq!(raw_status(&gw, sneaky).await, 400, "{sneaky}");
    }

    // Bodies stream through both ways, byte for byte.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let r = app
        .http
        .post(format!("{gw}/echo"))
        .bearer_auth(&fresh)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), big.as_slice());

    // An upstream that does not answer in time: 504.
    let r = app
        .bearer(reqwest::Method::GET, &format!("{gw}/slow"), &fresh)
        .await;
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_502() {
    let app = TestApp::sqlite().await;
    let [(rw, rw_secret), ..] = walley_clients(&app).await;
    // A port that was just free: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let gw = gateway(&config_text(&app, &closed, ("x", "y"))).await;
    let token = app.access_token(&rw, &rw_secret, &[]).await;
    let r = app
        .bearer(
            reqwest::Method::GET,
            &format!("{gw}/manage/orders/1"),
            &token,
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad_gateway");
}
