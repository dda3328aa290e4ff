//! `/readyz` under overload: with every pooled connection busy and hundreds of requests waiting, the node still
//! answers ready within a second (a busy node must not take itself out of the load balancer), and it answers not
//! ready only when the database is really unreachable (PostgreSQL stopped, on a server of the test's own).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::both_engines;
use crate::harness::{Launch, TestApp, eventually};
use crate::pg::OwnPostgres;

/// Requests in flight at once: far more than the pool's connections (5 in tests) and the two cores can serve.
const LOAD: usize = 300;

/// Keeps `LOAD` database-bound requests in flight (client creations, which write, and introspections, which read
/// the denylist) until `stop`; returns how many were answered.
fn overload(
    app: &TestApp,
    token: String,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    let answered = Arc::new(AtomicUsize::new(0));
    (0..LOAD)
        .map(|i| {
            let (http, base, token, stop, answered) = (
                app.http.clone(),
                app.base.clone(),
                token.clone(),
                stop.clone(),
                answered.clone(),
            );
            let admin = app.admin.client_id.clone();
            let secret = app.admin.client_secret.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = if i % 2 == 0 {
                        http.post(format!("{base}/admin/v1/clients"))
                            .bearer_auth(&token)
                            .json(&json!({"name": format!("load {i} {n}")}))
                            .send()
                            .await
                    } else {
                        http.post(format!("{base}/oauth2/introspect"))
                            .basic_auth(&admin, Some(&secret))
                            .form(&[("token", token.as_str())])
                            .send()
                            .await
                    };
                    if r.is_ok() {
                        n += 1;
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n
            })
        })
        .collect()
}

/// Polls `/readyz` every 100 ms for `span`, each answer bounded by one second; returns the statuses seen.
async fn readiness_during(app: &TestApp, span: Duration) -> Vec<(StatusCode, Duration)> {
    let probe = reqwest::Client::new();
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < span {
        let sent = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(1), probe.get(app.url("/readyz")).send())
            .await;
        let took = sent.elapsed();
        let status = match r {
            Ok(Ok(r)) => r.status(),
            Ok(Err(e)) => panic!("/readyz failed: {e}"),
            Err(_) => panic!("/readyz took more than a second under load"),
        };
        seen.push((status, took));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

/// Another session holds the lock every client creation needs for `hold`: the creations in flight wait for it,
/// each holding one of the pool's connections, so the pool is exhausted while the database itself answers.
async fn hold_the_write_lock(database: &str, hold: Duration) {
    use sqlx::Connection;
    if database.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(database).await.unwrap();
        let mut tx = c.begin().await.unwrap();
        sqlx::query("LOCK TABLE clients IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .unwrap();
        tokio::time::sleep(hold).await;
        tx.rollback().await.unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{database}"))
            .await
            .unwrap();
        let tx = c.begin_with("BEGIN IMMEDIATE").await.unwrap();
        tokio::time::sleep(hold).await;
        tx.rollback().await.unwrap();
    }
}

both_engines!(a_busy_node_stays_ready, |app| {
    let token = app.admin_token().await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = overload(&app, token, stop.clone());
    // Let the load fill the pool and the queue first; then every pooled connection waits on a lock for 3 s.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lock = hold_the_write_lock(&app.database, Duration::from_secs(3));
    let (seen, ()) = tokio::join!(readiness_during(&app, Duration::from_secs(5)), lock);
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for l in load {
        answered += l.await.unwrap();
    }
    let slowest = seen.iter().map(|(_, t)| *t).max().unwrap();
    eprintln!(
        "readiness under load: {} probes, slowest {} ms, {answered} loaded requests answered",
        seen.len(),
        slowest.as_millis()
    );
    assert!(
        seen.iter().all(|(s, _)| *s == StatusCode::OK),
        "a busy node said it was not ready: {seen:?}"
    );
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_while_busy_and_not_ready_once_the_database_is_gone() {
    let pg = tokio::task::spawn_blocking(OwnPostgres::start)
        .await
        .unwrap();
    let app = TestApp::launch(Launch {
        database: pg.url(),
        ..Launch::default()
    })
    .await;
    let token = app.admin_token().await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = overload(&app, token, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = readiness_during(&app, Duration::from_secs(3)).await;
    assert!(seen.iter().all(|(s, _)| *s == StatusCode::OK), "{seen:?}");

    // The database really goes away, under the same load: not ready within a few seconds.
    let pg = Arc::new(pg);
    let stopping = pg.clone();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap();
    let probe = reqwest::Client::new();
    eventually(
        Duration::from_secs(8),
        "not ready once PostgreSQL stopped",
        || async {
            let r =
                tokio::time::timeout(Duration::from_secs(1), probe.get(app.url("/readyz")).send())
                    .await
                    .expect("/readyz answers within a second")
                    .unwrap();
            r.status() == StatusCode::SERVICE_UNAVAILABLE
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
}
