//! keyward-client's verifier in a real API (examples/orders-api) against a real Keyward: every way a token can
//! be wrong gives the RFC 6750 answer, key rotation is picked up, and forged `kid`s cannot make it hammer the JWKS.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyward_client::Verifier;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::TestApp;

pub const UAT: &str = "705798e0-8cef-427c-ae00-6023deba29af";
pub const PROD: &str = "a3f3019f-2be9-41cc-a254-7bb347238e89";

/// Serves a router on 127.0.0.1:0; returns its base URL. The task ends with the test's runtime.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// The UAT and PROD resources (scopes `orders:read orders:write`), a UAT key with both scopes, a UAT key with
/// `orders:read` only, and a PROD key: returns the three as (id, secret).
pub async fn walley_clients(app: &TestApp) -> [(String, String); 3] {
    for r in [UAT, PROD] {
        app.resource(r, &["orders:read", "orders:write"]).await;
    }
    [
        app.client(json!({"name": "uat rw", "resources": [UAT], "scopes": ["orders:read", "orders:write"]}))
            .await,
        app.client(json!({"name": "uat r", "resources": [UAT], "scopes": ["orders:read"]}))
            .await,
        app.client(json!({"name": "prod", "resources": [PROD], "scopes": ["orders:read"]}))
            .await,
    ]
}

/// A token with its header replaced and a signature of our choosing: forgeries.
pub fn forge(token: &str, header: Value, signature: &[u8]) -> String {
    let payload = token.split('.').nth(1).unwrap();
    format!(
        "{}.{payload}.{}",
        B64.encode(header.to_string()),
        B64.encode(signature)
    )
}

/// A token whose payload was changed after signing.
pub fn tamper(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(&parts[1]).unwrap()).unwrap();
    claims["scope"] = json!("orders:read orders:write admin");
    parts[1] = B64.encode(claims.to_string());
    parts.join(".")
}

/// Checks an RFC 6750 answer: status, `WWW-Authenticate` contents, JSON `error`.
pub async fn assert_bearer(r: reqwest::Response, status: StatusCode, error: Option<&str>) -> Value {
    assert_eq!(r.status(), status);
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    match error {
        Some(e) => assert!(challenge.contains(&format!("error=\"{e}\"")), "{challenge}"),
        None => assert!(!challenge.contains("error="), "{challenge}"),
    }
    let body: Value = r.json().await.unwrap();
    assert_eq!(body.get("error").and_then(Value::as_str), error, "{body}");
    body
}

/// An HS256 signature over the token's signing input, keyed with the public key's bytes: the classic
/// algorithm-confusion forgery.
pub fn hs256_with_public_key(app_jwks: &Value, kid: &str, token: &str) -> String {
    let jwk = app_jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap();
    let secret = jwk.to_string();
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let payload = token.split('.').nth(1).unwrap();
    let input = format!("{}.{payload}", B64.encode(header.to_string()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

/// Every forgery of a good token, with the reason the verifier gives: tampered payload, `alg: none`, HS256 keyed
/// with the public key, and a `kid` nobody published.
pub async fn forgeries(app: &TestApp, token: &str) -> Vec<(String, &'static str)> {
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwks: Value = app.get_json(&app.url("/oauth2/jwks")).await;
    let header = |alg: &str, kid: &str| json!({"alg": alg, "typ": "at+jwt", "kid": kid});
    vec![
        (tamper(token), "bad signature"),
        (
            forge(token, header("none", &kid), b""),
            "algorithm does not match the key",
        ),
        (
            hs256_with_public_key(&jwks, &kid, token),
            "algorithm does not match the key",
        ),
        (
            forge(token, header("ES256", "forged"), b"sig"),
            "unknown key",
        ),
    ]
}

both_engines!(orders_api_verifies_every_way_a_token_can_be_wrong, |app| {
    let [(rw, rw_secret), (ro, ro_secret), (prod, prod_secret)] = walley_clients(&app).await;
    let verifier = Verifier::builder(app.app.settings.issuer.clone())
        .audience(UAT)
        .token_header("WM_SEC.ACCESS_TOKEN")
        .unwrap()
        .build()
        .unwrap();
    let api = serve(orders_api::protected(&verifier)).await;
    let order = format!("{api}/manage/orders/0f05ebc2-89ec-4l13-830a-ac4e0141f652");
    let get = |token: &str| app.http.get(&order).bearer_auth(token).send();

    // Walley's documented call.
    let token = app
        .access_token(&rw, &rw_secret, &[("scope", &format!("{UAT}/.default"))])
        .await;
    let r = app
        .http
        .get(&order)
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["orderId"].as_str(), body["merchant"].as_str()),
        (
            Some("0f05ebc2-89ec-4l13-830a-ac4e0141f652"),
            Some(rw.as_str())
        )
    );
    // The same token in WM_SEC.ACCESS_TOKEN, where configured.
    let r = app
        .http
        .get(&order)
        .header("WM_SEC.ACCESS_TOKEN", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // No token; a token in the query; a broken header.
    assert_bearer(
        app.http.get(&order).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        None,
    )
    .await;
    let r = app
        .http
        .get(format!("{order}?access_token={token}"))
        .send()
        .await
        .unwrap();
    assert_bearer(r, StatusCode::BAD_REQUEST, Some("invalid_request")).await;
    let r = app
        .http
        .get(&order)
        .header("Authorization", "Bearer a b")
        .send()
        .await
        .unwrap();
    assert_bearer(r, StatusCode::BAD_REQUEST, Some("invalid_request")).await;

    // Wrong audience: the PROD token at the UAT API.
    let prod_token = app.access_token(&prod, &prod_secret, &[]).await;
    let e = assert_bearer(
        get(&prod_token).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        Some("invalid_token"),
    )
    .await;
    assert_eq!(e["error_description"], "wrong audience");

    // Expired: the same API two hours later (its clock moved; the token's 15 minutes are long gone).
    let later = keyward::clock::Clock::wall() + 7_200;
    let late = Verifier::builder(app.app.settings.issuer.clone())
        .audience(UAT)
        .clock(move || later)
        .build()
        .unwrap();
    let late_api = serve(orders_api::protected(&late)).await;
    let r = app
        .bearer(
            reqwest::Method::GET,
            &format!("{late_api}/manage/orders/1"),
            &token,
        )
        .await;
    let e = assert_bearer(r, StatusCode::UNAUTHORIZED, Some("invalid_token")).await;
    assert_eq!(e["error_description"], "token expired");

    // Tampered, alg none, HS256 keyed with the public key, unknown kid.
    let forgeries = forgeries(&app, &token).await;
    for (forged, why) in forgeries {
        let e = assert_bearer(
            get(&forged).await.unwrap(),
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
        )
        .await;
        assert_eq!(e["error_description"], why);
    }

    // Missing scope: cancelling needs orders:write.
    let read_only = app.access_token(&ro, &ro_secret, &[]).await;
    let r = app
        .bearer(
            reqwest::Method::POST,
            &format!("{order}/cancel"),
            &read_only,
        )
        .await;
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"orders:write\"")
    );
    assert_bearer(r, StatusCode::FORBIDDEN, Some("insufficient_scope")).await;
    let r = app
        .bearer(reqwest::Method::POST, &format!("{order}/cancel"), &token)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
});

// The EU/US pair: a token from another Keyward (other issuer, other keys) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_issuers_token_is_refused() {
    let eu = TestApp::sqlite().await;
    let us = TestApp::sqlite().await;
    let [(rw, rw_secret), ..] = walley_clients(&eu).await;
    let [(us_rw, us_secret), ..] = walley_clients(&us).await;
    let verifier = Verifier::builder(eu.app.settings.issuer.clone())
        .audience(UAT)
        .build()
        .unwrap();
    let api = serve(orders_api::protected(&verifier)).await;
    let order = format!("{api}/manage/orders/1");
    let ok = eu.access_token(&rw, &rw_secret, &[]).await;
    let r = eu.bearer(reqwest::Method::GET, &order, &ok).await;
    assert_eq!(r.status(), StatusCode::OK);
    let foreign = us.access_token(&us_rw, &us_secret, &[]).await;
    let r = eu.bearer(reqwest::Method::GET, &order, &foreign).await;
    assert_bearer(r, StatusCode::UNAUTHORIZED, Some("invalid_token")).await;
    // Even signed by a key the verifier trusts, another issuer's `iss` is refused: the US JWKS served as the
    // EU one would make the signature good, and the issuer check still holds.
    let tricked = Verifier::builder(eu.app.settings.issuer.clone())
        .audience(UAT)
        .jwks_uri(us.url("/oauth2/jwks"))
        .build()
        .unwrap();
    assert_eq!(
        tricked.verify(&foreign).await.unwrap_err().to_string(),
        "wrong issuer"
    );
}

// Rotation on the server is picked up without restarting the API; forged kids cost at most one JWKS fetch per
// interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_picked_up_and_forged_kids_are_rate_limited() {
    let app = TestApp::sqlite().await;
    let [(rw, rw_secret), ..] = walley_clients(&app).await;
    // A counting pass-through in front of the JWKS.
    let fetches = Arc::new(AtomicUsize::new(0));
    let jwks_url = app.url("/oauth2/jwks");
    let counter = serve(axum::Router::new().route(
        "/jwks",
        axum::routing::get({
            let fetches = fetches.clone();
            move || async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                let body: Value = reqwest::get(&jwks_url).await.unwrap().json().await.unwrap();
                axum::Json(body)
            }
        }),
    ))
    .await;
    let verifier = Verifier::builder(app.app.settings.issuer.clone())
        .audience(UAT)
        .jwks_uri(format!("{counter}/jwks"))
        .unknown_kid_interval(Duration::from_millis(300))
        .clock({
            let clock = app.clock.clone();
            move || clock.now()
        })
        .build()
        .unwrap();
    let token = app.access_token(&rw, &rw_secret, &[]).await;
    verifier.verify(&token).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // Fifty forged kids in a burst: no more fetches within the interval.
    for i in 0..50 {
        let forged = forge(
            &token,
            json!({"alg": "ES256", "typ": "at+jwt", "kid": format!("forged-{i}")}),
            b"x",
        );
        assert!(verifier.verify(&forged).await.is_err());
    }
    assert!(
        fetches.load(Ordering::SeqCst) <= 2,
        "{} fetches",
        fetches.load(Ordering::SeqCst)
    );

    // Rotate ES256; after the publish delay the new key signs, and the verifier fetches it on first sight.
    app.rotate_and_activate("ES256").await;
    let rotated = app.access_token(&rw, &rw_secret, &[]).await;
    assert_ne!(
        jsonwebtoken::decode_header(&rotated).unwrap().kid,
        jsonwebtoken::decode_header(&token).unwrap().kid
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let claims = verifier.verify(&rotated).await.unwrap();
    assert_eq!(claims.client_id, rw);
    // The old key's tokens still verify while it is published.
    verifier
        .verify(&token)
        .await
        .unwrap_or_else(|e| panic!("old token: {e}"));
}

// Revocation awareness: a route that introspects refuses a revoked token at once.
both_engines!(introspecting_routes_honour_revocation, |app| {
    let [(rw, rw_secret), ..] = walley_clients(&app).await;
    let (api_id, api_secret) = app
        .client(json!({"name": "orders API", "resources": [], "serves_resources": [UAT]}))
        .await;
    let verifier = Verifier::builder(app.app.settings.issuer.clone())
        .audience(UAT)
        .introspection(api_id, api_secret, Duration::ZERO)
        .build()
        .unwrap();
    let api = serve(
        axum::Router::new().route(
            "/manage/orders/{id}",
            axum::routing::get(
                |keyward_client::Verified(c): keyward_client::Verified| async move { c.client_id },
            )
            .layer(verifier.layer().introspect()),
        ),
    )
    .await;
    let token = app.access_token(&rw, &rw_secret, &[]).await;
    let r = app
        .bearer(
            reqwest::Method::GET,
            &format!("{api}/manage/orders/1"),
            &token,
        )
        .await;
    assert_eq!(
        (r.status(), r.text().await.unwrap()),
        (StatusCode::OK, rw.clone())
    );
    app.revoke(&rw, &rw_secret, &token).await;
    let r = app
        .bearer(
            reqwest::Method::GET,
            &format!("{api}/manage/orders/1"),
            &token,
        )
        .await;
    let e = assert_bearer(r, StatusCode::UNAUTHORIZED, Some("invalid_token")).await;
    assert_eq!(e["error_description"], "token is not active");
});

// A fresh verifier hit by many requests at once fetches the keys once, and every request waits for that fetch
// rather than being refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_all_wait_for_the_first_fetch() {
    let app = TestApp::sqlite().await;
    let [(rw, rw_secret), ..] = walley_clients(&app).await;
    let token = app.access_token(&rw, &rw_secret, &[]).await;
    let verifier = Verifier::builder(app.app.settings.issuer.clone())
        .audience(UAT)
        .build()
        .unwrap();
    let checks: Vec<_> = (0..32)
        .map(|_| {
            let (v, t) = (verifier.clone(), token.clone());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for c in checks {
        c.await.unwrap().unwrap();
    }
}

// Keyward unreachable before any key was fetched: 503 (unavailable), never "invalid token".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_issuer_is_unavailable_not_invalid() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let verifier = Verifier::builder(closed).audience(UAT).build().unwrap();
    let token = forge(
        "e30.e30.e30",
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "k"}),
        b"s",
    );
    for _ in 0..3 {
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            keyward_client::VerifyError::Unavailable
        );
    }
}

// The verified-token cache: a token seen before is still refused once expired, or once its key is withdrawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_tokens_still_expire_and_follow_the_jwks() {
    use std::sync::atomic::{AtomicBool, AtomicI64};
    let app = TestApp::sqlite().await;
    let [(rw, rw_secret), ..] = walley_clients(&app).await;
    let token = app.access_token(&rw, &rw_secret, &[]).await;
    // A JWKS that can be emptied, as when a compromised key is pulled.
    let withdrawn = Arc::new(AtomicBool::new(false));
    let jwks_url = app.url("/oauth2/jwks");
    let jwks = serve(axum::Router::new().route(
        "/jwks",
        axum::routing::get({
            let withdrawn = withdrawn.clone();
            move || async move {
                let body: Value = if withdrawn.load(Ordering::SeqCst) {
                    json!({"keys": []})
                } else {
                    reqwest::get(&jwks_url).await.unwrap().json().await.unwrap()
                };
                axum::Json(body)
            }
        }),
    ))
    .await;
    let now = Arc::new(AtomicI64::new(app.clock.now()));
    let verifier = Verifier::builder(app.app.settings.issuer.clone())
        .audience(UAT)
        .jwks_uri(format!("{jwks}/jwks"))
        .clock({
            let now = now.clone();
            move || now.load(Ordering::SeqCst)
        })
        .build()
        .unwrap();
    verifier.verify(&token).await.unwrap();
    verifier.verify(&token).await.unwrap();
    // Past exp + leeway, the cached entry no longer answers.
    now.fetch_add(900 + 15, Ordering::SeqCst);
    assert_eq!(
        verifier.verify(&token).await.unwrap_err().to_string(),
        "token expired"
    );
    now.fetch_sub(900 + 15, Ordering::SeqCst);
    verifier.verify(&token).await.unwrap();
    // Withdrawn from the JWKS: refused although cached.
    withdrawn.store(true, Ordering::SeqCst);
    verifier.refresh().await.unwrap();
    assert_eq!(
        verifier.verify(&token).await.unwrap_err().to_string(),
        "unknown key"
    );
}
