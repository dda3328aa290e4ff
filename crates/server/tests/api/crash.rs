//! `kill -9` of the real binary while clients are being created, on both engines: every client the server
//! answered 201 for works after a restart on the same database and data dir, and the database holds no
//! half-created client (a client row without its secret or its resource link).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::child::{FreshPg, Served, token_request};
use crate::harness::Engine;

/// How long the clients are created before the kill: long enough for hundreds of commits on either engine.
const CREATING: Duration = Duration::from_millis(1500);

/// Concurrent creation loops: more writers than one, so commits overlap when the process dies.
const LOOPS: usize = 4;

/// The resource every created client is allowed, and the prefix of their names.
const API: &str = "https://api.example.com";
const PREFIX: &str = "crash-";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    kill_9_while_creating_clients(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    kill_9_while_creating_clients(Engine::Postgres).await;
}

/// What one creation loop saw before the server died.
#[derive(Default)]
struct Seen {
    /// (client_id, client_secret) of every 201.
    created: Vec<(String, String)>,
    /// Requests that got no answer: the one in flight when the server died, or one sent after.
    unanswered: usize,
    /// Any answer other than 201, with its body: none is expected.
    other: Vec<(StatusCode, String)>,
}

async fn kill_9_while_creating_clients(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let pg = match engine {
        Engine::Postgres => Some(FreshPg::create().await),
        Engine::Sqlite => None,
    };
    let sqlite_file = dir.path().join("keyward.db");
    let database = match &pg {
        Some(pg) => pg.url.clone(),
        None => sqlite_file.to_string_lossy().into_owned(),
    };
    // The same database and data dir (and so the same master key, data_dir/keyward.secret) for both starts.
    let start = || {
        Served::serve(
            ["--database", database.as_str()],
            [
                ("KEYWARD_DATA_DIR", dir.path().as_os_str()),
                ("KEYWARD_DB_MAX_CONNECTIONS", OsStr::new("5")),
            ],
        )
    };
    let mut first = start();
    let (admin_id, admin_secret) = first.admin();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let admin = token(&http, &first.base, &admin_id, &admin_secret).await;
    let r = http
        .post(first.url("/admin/v1/resources"))
        .bearer_auth(&admin)
        .json(&json!({"identifier": API, "name": "API", "scopes": ["read", "write"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );

    let in_flight = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = (0..LOOPS)
        .map(|n| {
            let (http, url, admin, in_flight) = (
                http.clone(),
                first.url("/admin/v1/clients"),
                admin.clone(),
                in_flight.clone(),
            );
            tokio::spawn(async move {
                let mut seen = Seen::default();
                // Until the server is gone: a loop stops at its first request without an answer.
                for i in 0.. {
                    let body =
                        json!({"name": format!("{PREFIX}{n}-{i}"), "resources": [API], "scopes": ["read"]});
                    in_flight.fetch_add(1, Ordering::SeqCst);
                    let answer = async {
                        let r = http.post(&url).bearer_auth(&admin).json(&body).send().await?;
                        let status = r.status();
                        Ok::<_, reqwest::Error>((status, r.text().await?))
                    }
                    .await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    match answer {
                        Ok((StatusCode::CREATED, text)) => {
                            let v: Value = serde_json::from_str(&text).unwrap();
                            seen.created.push((
                                v["client_id"].as_str().unwrap().to_owned(),
                                v["client_secret"].as_str().unwrap().to_owned(),
                            ));
                        }
                        Ok(other) => seen.other.push(other),
                        Err(_) => {
                            seen.unanswered += 1;
                            break;
                        }
                    }
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(CREATING).await;
    let in_flight_at_kill = in_flight.load(Ordering::SeqCst);
    first.kill_9();
    let mut created = Vec::new();
    let mut unanswered = 0;
    for l in loops {
        let seen = l.await.unwrap();
        assert!(
            seen.other.is_empty(),
            "answers other than 201: {:?}",
            seen.other
        );
        created.extend(seen.created);
        unanswered += seen.unanswered;
    }
    eprintln!(
        "crash test ({engine:?}): {} clients created (201) in {CREATING:?}, {in_flight_at_kill} requests in flight \
         at the kill, {unanswered} unanswered",
        created.len()
    );
    // Without creations before the kill the test would prove nothing.
    assert!(!created.is_empty(), "no client was created before the kill");
    assert_eq!(unanswered, LOOPS, "every loop ends at the dead server");

    // The database as the crash left it, before a restart could touch it.
    let rows = match &pg {
        Some(pg) => {
            let pool = sqlx::PgPool::connect(&pg.url).await.unwrap();
            let rows = sqlx::query_as(ROWS).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
        None => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&sqlite_file);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            let rows = sqlx::query_as(ROWS).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
    };
    check_rows(&rows, &created, unanswered);

    // The same binary, database and data dir: a later start, not a first start.
    let restarted = start();
    assert_eq!(
        restarted.first_start(),
        None,
        "the restart redid first start"
    );
    let created = Arc::new(created);
    let checks: Vec<_> = (0..LOOPS)
        .map(|n| {
            let (http, base, created) = (http.clone(), restarted.base.clone(), created.clone());
            tokio::spawn(async move {
                for (id, secret) in created.iter().skip(n).step_by(LOOPS) {
                    let r = token_request(&http, &base, id, secret)
                        .send()
                        .await
                        .unwrap();
                    let status = r.status();
                    assert_eq!(status, StatusCode::OK, "{id}: {}", r.text().await.unwrap());
                }
            })
        })
        .collect();
    for c in checks {
        c.await.unwrap();
    }
}

/// Every client with how many secrets and resource links it has.
const ROWS: &str = "SELECT c.id, c.name, \
     (SELECT COUNT(*) FROM client_secrets s WHERE s.client_id = c.id), \
     (SELECT COUNT(*) FROM client_resources r WHERE r.client_id = c.id) \
     FROM clients c";

/// No client is half there, and the created ones are exactly those answered 201 plus some of those that got no
/// answer.
fn check_rows(
    rows: &[(String, String, i64, i64)],
    created: &[(String, String)],
    unanswered: usize,
) {
    for (id, name, secrets, resources) in rows {
        assert!(
            *secrets >= 1,
            "client {id} ({name}) has no secret: half-created"
        );
        assert!(
            *resources >= 1,
            "client {id} ({name}) has no resource link: half-created"
        );
    }
    let answered: HashSet<&str> = created.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        answered.len(),
        created.len(),
        "one client id answered twice"
    );
    let in_db: HashSet<&str> = rows
        .iter()
        .filter(|(_, name, ..)| name.starts_with(PREFIX))
        .map(|(id, ..)| id.as_str())
        .collect();
    for (id, _) in created {
        assert!(
            in_db.contains(id.as_str()),
            "client {id} was answered 201 but is not in the database"
        );
    }
    assert!(
        in_db.len() <= created.len() + unanswered,
        "{} clients in the database, but only {} answered 201 and {unanswered} unanswered",
        in_db.len(),
        created.len()
    );
}

/// A client_credentials token for `id`.
async fn token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let r = token_request(http, base, id, secret).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}
