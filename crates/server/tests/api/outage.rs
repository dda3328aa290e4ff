//! PostgreSQL stopped and restarted under load, on a server of the test's own (`pg.rs`): requests that need the
//! database fail fast with 503 and `Retry-After`, tokens for clients in memory keep coming for
//! `stale_while_unreachable` and stop after it, `/readyz` says not ready, the node recovers by itself, and every
//! creation that answered 201 is there afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Launch, TestApp, eventually};
use crate::pg::OwnPostgres;

/// One request's outcome: when it started (since the load began), its status (0 for a transport error), how
/// long it took, and whether a 503 carried `Retry-After`.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    at: Duration,
    status: u16,
    took: Duration,
    retry_after: bool,
}

type Log = Arc<Mutex<Vec<Outcome>>>;

/// Sends `request` in a loop until `stop`, logging every outcome; returns the bodies of the 2xx answers.
fn load<F>(
    start: Instant,
    stop: Arc<AtomicBool>,
    log: Log,
    request: F,
) -> tokio::task::JoinHandle<Vec<Value>>
where
    F: Fn() -> reqwest::RequestBuilder + Send + 'static,
{
    tokio::spawn(async move {
        let mut bodies = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            let result = request().send().await;
            let took = sent.elapsed();
            let (status, retry_after) = match &result {
                Ok(r) => (r.status().as_u16(), r.headers().contains_key("retry-after")),
                Err(_) => (0, false),
            };
            log.lock().unwrap().push(Outcome {
                at: sent - start,
                status,
                took,
                retry_after,
            });
            if let Ok(r) = result {
                if r.status().is_success() {
                    bodies.push(r.json().await.unwrap_or(Value::Null));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bodies
    })
}

/// Runs a blocking `pg_ctl` step off the runtime, so the load keeps going while it waits.
async fn off_runtime(pg: &Arc<OwnPostgres>, step: fn(&OwnPostgres)) {
    let pg = pg.clone();
    tokio::task::spawn_blocking(move || step(&pg))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted_under_load() {
    let pg = tokio::task::spawn_blocking(OwnPostgres::start)
        .await
        .unwrap();
    let a = TestApp::launch(Launch {
        database: pg.url(),
        env: [("KEYWARD_STALE_WHILE_UNREACHABLE", "20s")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..Launch::default()
    })
    .await;
    // A second node whose stale limit is short: it must stop issuing during the same outage.
    let b = a
        .node_with(&[("KEYWARD_STALE_WHILE_UNREACHABLE", "2s")])
        .await;
    let (id, secret) = a.api_client().await;
    let admin_token = a.admin_token().await;
    let token = a.access_token(&id, &secret, &[]).await;
    a.wait_loaded().await;
    b.wait_loaded().await;
    // The client made on A reaches B's memory through the change feed.
    let b_serves = || async { b.token(&id, &secret, &[]).await.status() == StatusCode::OK };
    eventually(Duration::from_secs(1), "B learns of the client", b_serves).await;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (tokens, introspections, creations): (Log, Log, Log) = Default::default();
    let token_load = load(start, stop.clone(), tokens.clone(), {
        let (http, url, id, secret) = (
            http.clone(),
            a.url("/oauth2/token"),
            id.clone(),
            secret.clone(),
        );
        move || {
            http.post(&url)
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials")])
        }
    });
    let introspection_load = load(start, stop.clone(), introspections.clone(), {
        let (http, url, id, secret) = (
            http.clone(),
            a.url("/oauth2/introspect"),
            id.clone(),
            secret.clone(),
        );
        move || {
            http.post(&url)
                .basic_auth(&id, Some(&secret))
                .form(&[("token", token.as_str())])
        }
    });
    let creation_load = load(start, stop.clone(), creations.clone(), {
        let (http, url) = (http.clone(), a.url("/admin/v1/clients"));
        move || {
            http.post(&url)
                .bearer_auth(&admin_token)
                .json(&json!({"name": "made under load", "resources": ["https://api.example.com"]}))
        }
    });

    tokio::time::sleep(Duration::from_secs(1)).await;
    let pg = Arc::new(pg);
    off_runtime(&pg, OwnPostgres::stop).await;
    let down_at = start.elapsed();
    // Down for a few seconds: past B's stale limit (2 s), well within A's (20 s).
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let ready = a.http.get(a.url("/readyz")).send().await.unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz while down"
    );
    let r = b.token(&id, &secret, &[]).await;
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "B past its stale limit"
    );
    assert!(r.headers().contains_key("retry-after"));
    let jwks = b.http.get(b.url("/oauth2/jwks")).send().await.unwrap();
    assert_eq!(
        jwks.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "B's JWKS past its stale limit"
    );
    off_runtime(&pg, OwnPostgres::start_again).await;
    let up_at = start.elapsed();
    // Recovery: the first request that needs the database answers 200 again.
    let recovered = loop {
        let first_ok = introspections
            .lock()
            .unwrap()
            .iter()
            .find(|o| o.at >= up_at && o.status == 200)
            .map(|o| o.at + o.took);
        if let Some(t) = first_ok {
            break t - up_at;
        }
        assert!(
            start.elapsed() - up_at < Duration::from_secs(15),
            "no recovery within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);
    token_load.await.unwrap();
    introspection_load.await.unwrap();
    let created = creation_load.await.unwrap();

    // Tokens for the client in A's memory: every one issued, down or not.
    let tokens = tokens.lock().unwrap().clone();
    let during: Vec<_> = tokens
        .iter()
        .filter(|o| o.at > down_at && o.at < up_at)
        .collect();
    assert!(
        !during.is_empty(),
        "tokens were requested during the outage"
    );
    assert!(
        tokens.iter().all(|o| o.status == 200),
        "stale-while-unreachable: {:?}",
        tokens.iter().find(|o| o.status != 200)
    );
    // Requests that need the database: 200/201, or a 503 with Retry-After within the acquire timeout (2 s)
    // plus scheduling slack; nothing else.
    let mut slowest_503 = Duration::ZERO;
    let mut count_503 = 0;
    for (what, log) in [("introspection", &introspections), ("creation", &creations)] {
        for o in log.lock().unwrap().iter() {
            match o.status {
                200 | 201 => {}
                503 => {
                    assert!(o.retry_after, "{what}: 503 without Retry-After");
                    assert!(o.took < Duration::from_secs(3), "{what}: a slow 503: {o:?}");
                    slowest_503 = slowest_503.max(o.took);
                    count_503 += 1;
                }
                _ => panic!("{what}: only success or 503 while the database is down: {o:?}"),
            }
        }
    }
    assert!(count_503 > 0, "the outage was seen");
    // B serves again once the database is back.
    eventually(Duration::from_secs(5), "B recovers", b_serves).await;
    let ready = a.http.get(a.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    // No write that answered 201 was lost.
    for c in &created {
        let (cid, csecret) = (
            c["client_id"].as_str().unwrap(),
            c["client_secret"].as_str().unwrap(),
        );
        assert_eq!(
            a.token(cid, csecret, &[]).await.status(),
            StatusCode::OK,
            "client {cid} lost"
        );
    }
    eprintln!(
        "outage: down {:.1} s; {} tokens issued while down (all 200); {count_503} fast 503s, slowest {} ms; \
         recovered {} ms after PostgreSQL was back; {} clients created under load, all present",
        (up_at - down_at).as_secs_f64(),
        during.len(),
        slowest_503.as_millis(),
        recovered.as_millis(),
        created.len()
    );
}
