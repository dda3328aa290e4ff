//! A token's life through the agent, against a plain Keyward with short-lived tokens: replaced before it expires,
//! kept through an outage of Keyward and replaced once it is back, a rotated secret picked up from its file
//! without a restart, and a 429's `Retry-After` waited out.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::{
    Admin, agent, claims, http, keyward, keyward_soon, metric, metrics_addr, plain_api, token_mode,
    token_of, unix_now,
};
use crate::child::token_request;

// A token of 5 s is replaced before it ends, so token mode never hands out an expired one; a rotated secret is
// read from its file and used for the next token, while the token held goes on being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_tokens_are_replaced_and_rotated_secrets_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let keyward = keyward_soon(dir.path().join("keyward"), None)
        .await
        .unwrap();
    let admin = Admin::of(&keyward).await;
    admin.resource("https://short.example", "5s").await;
    admin.resource("https://rotated.example", "10s").await;
    let (short, short_secret) = admin.client("https://short.example", json!({})).await;
    let (rotated, old_secret) = admin.client("https://rotated.example", json!({})).await;
    let secret_file = dir.path().join("rotated.secret");
    std::fs::write(&secret_file, format!("{old_secret}\n")).unwrap();
    let config = format!(
        "reload_interval = \"1s\"\n{}client_id = \"{short}\"\nclient_secret = \"{short_secret}\"\n{}\
         client_id_env = \"ROTATED_ID\"\nclient_secret_file = \"{}\"\n",
        plain_api("short", &keyward.base, "https://short.example"),
        plain_api("rotated", &keyward.base, "https://rotated.example"),
        secret_file.display()
    );
    let mut agent = agent(dir.path(), &config, &[("ROTATED_ID", &rotated)]);
    let metrics = metrics_addr(&mut agent, "metrics_listen=");
    let http = http();

    // Short-lived tokens, polled for 11 s meanwhile: never expired, and replaced.
    let polling = {
        let (http, url) = (http.clone(), agent.url("/v1/token/short"));
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(11) {
                let r = http
                    .get(&url)
                    .header("Metadata-Flavor", "Keyward")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                let body: serde_json::Value = r.json().await.unwrap();
                let token = body["access_token"].as_str().unwrap().to_owned();
                let exp = claims(&token)["exp"].as_f64().unwrap();
                assert!(exp > unix_now(), "an expired token was served");
                let expires_in = body["expires_in"].as_u64().unwrap();
                assert!((1..=5).contains(&expires_in), "expires_in {expires_in}");
                seen.insert(token);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen.len()
        })
    };

    // Rotation: a new secret, the old one deleted, the new one written where the agent reads it.
    let (held, _) = token_of(&http, &agent, "rotated").await;
    let (status, made) = admin
        .call(
            reqwest::Method::POST,
            &format!("/clients/{rotated}/secrets"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let new_secret = made["client_secret"].as_str().unwrap().to_owned();
    let (_, list) = admin
        .call(
            reqwest::Method::GET,
            &format!("/clients/{rotated}/secrets"),
            None,
        )
        .await;
    for s in list["items"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        if id != made["secret_id"] {
            let path = format!("/clients/{rotated}/secrets/{id}");
            let (status, _) = admin.call(reqwest::Method::DELETE, &path, None).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
    }
    let r = token_request(&http, &keyward.base, &rotated, &old_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the old secret is gone"
    );
    std::fs::write(&secret_file, format!("{new_secret}\n")).unwrap();
    agent.wait_for("new credentials in use");
    let (still, _) = token_of(&http, &agent, "rotated").await;
    assert_eq!(still, held, "the token held is served until its refresh");
    let start = Instant::now();
    let fresh = loop {
        let (t, _) = token_of(&http, &agent, "rotated").await;
        if t != held {
            break t;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no new token");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(claims(&fresh)["exp"].as_f64().unwrap() > unix_now());
    let failures = "keyward_agent_token_failures_total{api=\"rotated\"}";
    assert_eq!(
        metric(&http, &metrics, failures).await,
        0,
        "the old secret was never sent after the reload"
    );
    assert_eq!(
        metric(
            &http,
            &metrics,
            "keyward_agent_reloads_total{result=\"ok\"}"
        )
        .await,
        1
    );

    // A file broken by mistake is refused, and the credentials in use are kept.
    std::fs::write(dir.path().join("agent.toml"), "[api.short\n").unwrap();
    agent.wait_for("reload failed");
    token_of(&http, &agent, "rotated").await;

    let replaced = polling.await.unwrap();
    assert!(
        replaced >= 2,
        "the 5 s token was replaced ({replaced} seen in 11 s)"
    );
    for secret in [&short_secret, &old_secret, &new_secret] {
        assert!(
            agent.log().iter().all(|l| !l.contains(secret.as_str())),
            "a secret in the log"
        );
    }
}

// Keyward killed: the agent serves the token it holds until that nears its end, then says 503 with Retry-After;
// Keyward started again on the same port and database: a fresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_rides_out_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("keyward");
    let mut first = keyward_soon(data.clone(), None).await.unwrap();
    let admin = Admin::of(&first).await;
    admin.resource("https://api.example", "8s").await;
    let (id, secret) = admin.client("https://api.example", json!({})).await;
    let config = format!(
        "{}client_id = \"{id}\"\nclient_secret = \"{secret}\"\n",
        plain_api("api", &first.base, "https://api.example")
    );
    let agent = agent(dir.path(), &config, &[]);
    let http = http();
    let (held, _) = token_of(&http, &agent, "api").await;
    let got = Instant::now();
    let addr = first.addr().to_owned();
    first.kill_9();

    // Past the refresh point (6 s of 8) and until the token's last moments, the held token is served.
    while got.elapsed() < Duration::from_millis(6_400) {
        let (t, expires_in) = token_of(&http, &agent, "api").await;
        assert_eq!(t, held);
        assert!(expires_in <= 8);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let r = token_mode(&http, &agent, "api").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");

    // Back on the same port and database.
    let _again = tokio::task::spawn_blocking(move || keyward(&addr, &data, &[]))
        .await
        .unwrap();
    let start = Instant::now();
    let fresh = loop {
        let r = token_mode(&http, &agent, "api").send().await.unwrap();
        if r.status() == StatusCode::OK {
            break r.json::<serde_json::Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no token after the restart"
        );
    };
    assert_ne!(fresh, held);
    assert!(claims(&fresh)["exp"].as_f64().unwrap() > unix_now());
}

// Keyward's per-client rate limit answers 429 with Retry-After: 6; the agent asks again only once that has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_waited_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut keyward = keyward_soon(dir.path().join("keyward"), None)
        .await
        .unwrap();
    let keyward_metrics = metrics_addr(&mut keyward, "serving Prometheus metrics");
    let admin = Admin::of(&keyward).await;
    admin.resource("https://limited.example", "15m").await;
    let (id, secret) = admin
        .client(
            "https://limited.example",
            json!({"limits": {"token": "10/min burst 1"}}),
        )
        .await;
    let http = http();
    // The one token the burst allows, spent: the next is allowed 6 s from now.
    let r = token_request(&http, &keyward.base, &id, &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let spent = Instant::now();
    let config = format!(
        "{}client_id = \"{id}\"\nclient_secret = \"{secret}\"\n",
        plain_api("limited", &keyward.base, "https://limited.example")
    );
    let mut agent = agent(dir.path(), &config, &[]);
    let metrics = metrics_addr(&mut agent, "metrics_listen=");
    let token = loop {
        let r = token_mode(&http, &agent, "limited").send().await.unwrap();
        if r.status() == StatusCode::OK {
            break r;
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(spent.elapsed() < Duration::from_secs(20), "no token");
    };
    let waited = spent.elapsed();
    assert!(
        waited >= Duration::from_millis(5_500),
        "a token after {waited:?}"
    );
    assert!(token.json::<serde_json::Value>().await.unwrap()["access_token"].is_string());
    let limited = "keyward_rate_limited_total{limit=\"token_client\"}";
    assert_eq!(
        metric(&http, &keyward_metrics, limited).await,
        1,
        "asked once in the 6 s"
    );
    let failures = "keyward_agent_token_failures_total{api=\"limited\"}";
    assert_eq!(metric(&http, &metrics, failures).await, 1);
    assert!(
        agent.log().iter().any(|l| l.contains("status 429")),
        "{:#?}",
        agent.log()
    );
}
