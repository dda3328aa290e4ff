//! Nodes whose clocks differ and jump, on one database: what the cluster shares is timed by the database's
//! clock. A code is refused past its lifetime on a node whose clock is a minute behind, an hour behind, or stepped
//! back an hour while running; tokens from such a node carry the right times; a node behind the moment the first
//! signing keys activate still signs; and where signing is truly impossible the answer is 503, never 500.

use std::time::Duration;

use keyward::clock::Clock;
use reqwest::StatusCode;

use crate::both_engines;
use crate::harness::{Launch, TestApp, assert_error, claims, eventually};
use crate::oauth_agent::*;

/// A short code lifetime, so that the test waits for a real expiry (the clocks here are real ones).
const CODE_TTL: &str = "2s";

/// A node whose own clock is `skew` seconds off, on `a`'s database.
async fn skewed_node(a: &TestApp, skew: i64) -> TestApp {
    a.node_on(
        Clock::system_skewed(skew),
        &[("KEYWARD_AUTHORIZATION_CODE_TTL", CODE_TTL)],
    )
    .await
}

/// Waits until every node issues tokens to `id` (the feed has brought the client, its resource, and everything
/// made before them, to each node).
async fn until_known(nodes: &[&TestApp], id: &str, secret: &str) {
    for node in nodes {
        eventually(
            Duration::from_secs(5),
            "the client reaches the node",
            || async { node.token(id, secret, &[]).await.status() == StatusCode::OK },
        )
        .await;
    }
}

/// Asserts a token's `iat` is the real time (within two seconds) and its `exp` its lifetime after.
fn assert_real_times(token: &str, lifetime: i64) {
    let c = claims(token);
    let iat = c["iat"].as_i64().unwrap();
    assert!(
        (iat - Clock::wall()).abs() <= 2,
        "iat {iat}, wall {}",
        Clock::wall()
    );
    assert_eq!(c["exp"].as_i64().unwrap() - iat, lifetime);
}

both_engines!(codes_expire_by_the_database_clock_on_every_node, |fixed| {
    // The test's usual fixed clock is replaced by real, synced ones.
    let a = TestApp::launch(Launch {
        database: fixed.database.clone(),
        clock: Some(Clock::system()),
        env: [("KEYWARD_AUTHORIZATION_CODE_TTL", CODE_TTL)]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        admin: Some(keyward::first_start::FirstStart {
            client_id: fixed.admin.client_id.clone(),
            client_secret: fixed.admin.client_secret.clone(),
        }),
        dir: {
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy(
                fixed.dir.path().join("keyward.secret"),
                dir.path().join("keyward.secret"),
            )
            .unwrap();
            dir
        },
        ..Launch::default()
    })
    .await;
    let minute_behind = skewed_node(&a, -60).await;
    let hour_behind = skewed_node(&a, -3_600).await;
    let f = fixture(&a).await;
    let (id, secret) = a
        .client(serde_json::json!({"name": "cc", "resources": [API], "scopes": ["orders:read"]}))
        .await;
    until_known(&[&a, &minute_behind, &hour_behind], &id, &secret).await;
    let agent = Agent::new(&a);
    agent.sign_in(EMAIL).await;

    // Within the lifetime a code works on a node an hour behind, and the tokens it gets carry the real time.
    let p = pkce();
    let code = agent
        .code(&a, &request(&f.id, &p.challenge, "s"), EMAIL)
        .await;
    let (access, _, _) = tokens(redeem(&hour_behind, f.basic(), &code, &p.verifier).await).await;
    assert_real_times(&access, 900);
    for node in [&a, &minute_behind, &hour_behind] {
        assert_real_times(&node.access_token(&id, &secret, &[]).await, 900);
    }

    // Past its lifetime (2 s, and the leeway of a sample), a code is refused on every node, whatever its clock.
    let codes: Vec<(String, String)> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let p = pkce();
            let code = agent
                .code(&a, &request(&f.id, &p.challenge, "s"), EMAIL)
                .await;
            v.push((code, p.verifier));
        }
        v
    };
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    for (node, (code, verifier)) in [&a, &minute_behind, &hour_behind].into_iter().zip(&codes) {
        let r = redeem(node, f.basic(), code, verifier).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }

    // The node's wall clock stepped back an hour while it runs, then the clock synced again as housekeeping does:
    // nothing changes, since the wall clock is not read again.
    minute_behind.clock.step_wall(-3_600);
    keyward::clock::sync_clock(&minute_behind.clock, &minute_behind.app.store)
        .await
        .unwrap();
    let p = pkce();
    let code = agent
        .code(&a, &request(&f.id, &p.challenge, "s"), EMAIL)
        .await;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let r = redeem(&minute_behind, f.basic(), &code, &p.verifier).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_real_times(&minute_behind.access_token(&id, &secret, &[]).await, 900);
});

both_engines!(a_node_behind_the_first_keys_still_signs, |fixed| {
    // A fresh database whose first start runs on a node an hour behind; a node with the right time joins.
    let (database, pg) = match fixed.database.starts_with("postgres") {
        true => {
            let (name, url) = crate::harness::fresh_pg_database().await;
            (url, Some(name))
        }
        false => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("fresh.db").to_string_lossy().into_owned();
            std::mem::forget(dir);
            (path, None)
        }
    };
    let behind = TestApp::launch(Launch {
        database,
        pg_database: pg,
        clock: Some(Clock::system_skewed(-3_600)),
        ..Launch::default()
    })
    .await;
    let right = behind.node_on(Clock::system(), &[]).await;
    let (id, secret) = behind.api_client().await;
    until_known(&[&behind, &right], &id, &secret).await;
    for node in [&behind, &right] {
        let token = node.access_token(&id, &secret, &[]).await;
        node.verify_jwt(&token, "https://api.example.com").await;
        assert_real_times(&token, 900);
    }
});

both_engines!(no_signing_key_is_503_never_500, |app| {
    let (id, secret) = app.api_client().await;
    // A node whose fixed clock is two days before the first keys activate (the first keys activate a day before
    // first start): it has no key to sign with.
    let early = app
        .node_on(Clock::fixed(app.clock.now() - 2 * 86_400), &[])
        .await;
    let r = early.token(&id, &secret, &[]).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "server_error", "{body}");
    // The node with the cluster's time signs.
    app.access_token(&id, &secret, &[]).await;
});
