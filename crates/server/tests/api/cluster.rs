//! Two nodes on one database, as a load balancer sees them: a change made through one is honoured by the other
//! within a second (PostgreSQL notifications; SQLite polls the feed), keys are published everywhere before they
//! sign, nodes starting together migrate once, a newer schema is refused, and one node at a time purges.

use std::time::Duration;

use keyward::app::App;
use keyward::clock::Clock;
use keyward::config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::{TestApp, eventually, fresh_pg_database};
use crate::keys::{jwks_kids, kid};

/// The bound the issue sets on propagation between nodes.
const PROPAGATION: Duration = Duration::from_secs(1);

/// Polls `check` until it holds, failing past `PROPAGATION`; prints how long it took (the figure of the note).
async fn within_a_second<F, Fut>(what: &str, check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let took = eventually(PROPAGATION, what, check).await;
    eprintln!("propagation: {what} in {} ms", took.as_millis());
    took
}

/// A second node for tests that poll it, many times a second, with credentials it does not know yet: the
/// failed-authentication limits (tested in `limits.rs`) would answer 429 before the change arrives.
async fn polled_node(a: &TestApp) -> TestApp {
    a.node_with(&[
        ("KEYWARD_FAILED_AUTH_LIMIT_ADDRESS", "off"),
        ("KEYWARD_FAILED_AUTH_LIMIT_CLIENT", "off"),
    ])
    .await
}

async fn token_status(node: &TestApp, id: &str, secret: &str) -> StatusCode {
    node.token(id, secret, &[]).await.status()
}

both_engines!(
    client_changes_on_one_node_reach_the_other_within_a_second,
    |a| {
        let b = polled_node(&a).await;
        b.wait_loaded().await;
        // Created on A → a token on B.
        let (id, secret) = a.api_client().await;
        within_a_second("create on A, token on B", || async {
            token_status(&b, &id, &secret).await == StatusCode::OK
        })
        .await;
        // A new secret on A (the old one retired at once) → B takes the new one and refuses the old.
        let (status, body) = a
            .admin_call(
                Method::POST,
                &format!("/clients/{id}/secrets"),
                Some(json!({"retire_old_after": 0})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let new_secret = body["client_secret"].as_str().unwrap().to_owned();
        within_a_second("secret rotated on A, honoured on B", || async {
            token_status(&b, &id, &new_secret).await == StatusCode::OK
                && token_status(&b, &id, &secret).await == StatusCode::UNAUTHORIZED
        })
        .await;
        // Disabled on A → B refuses.
        let (status, _) = a
            .admin_call(Method::POST, &format!("/clients/{id}/disable"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        within_a_second("disable on A, B refuses", || async {
            token_status(&b, &id, &new_secret).await == StatusCode::UNAUTHORIZED
        })
        .await;
        // Enabled again, then deleted on A → B refuses.
        a.admin_call(Method::POST, &format!("/clients/{id}/enable"), None)
            .await;
        within_a_second("enable on A, B serves", || async {
            token_status(&b, &id, &new_secret).await == StatusCode::OK
        })
        .await;
        let (status, _) = a
            .admin_call(Method::DELETE, &format!("/clients/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        within_a_second("delete on A, B refuses", || async {
            token_status(&b, &id, &new_secret).await == StatusCode::UNAUTHORIZED
        })
        .await;
    }
);

both_engines!(resource_change_and_revocation_reach_the_other_node, |a| {
    let b = polled_node(&a).await;
    b.wait_loaded().await;
    let resource = a.resource("https://api.example.com", &["read"]).await;
    let (id, secret) = a
        .client(
            json!({"name": "shop", "resources": ["https://api.example.com"], "scopes": ["read"]}),
        )
        .await;
    // A resource's lifetime changed on A → B's tokens carry it.
    let (status, body) = a
        .admin_call(
            Method::PATCH,
            &format!("/resources/{}", resource["id"].as_str().unwrap()),
            Some(json!({"access_token_ttl": 600})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    within_a_second("resource changed on A, B's tokens follow", || async {
        let r = b.token(&id, &secret, &[]).await;
        r.status() == StatusCode::OK && r.json::<Value>().await.unwrap()["expires_in"] == 600
    })
    .await;
    // A token from B, revoked on A → inactive on B.
    let token = b.access_token(&id, &secret, &[]).await;
    let active = |node: &TestApp| {
        let token = token.clone();
        let (id, secret) = (id.clone(), secret.clone());
        let node_url = node.url("/oauth2/introspect");
        let http = node.http.clone();
        async move {
            let r = http
                .post(node_url)
                .basic_auth(&id, Some(&secret))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()["active"] == true
        }
    };
    assert!(active(&b).await);
    a.revoke(&id, &secret, &token).await;
    within_a_second("revoke on A, introspection on B inactive", || async {
        !active(&b).await
    })
    .await;
});

both_engines!(
    a_key_rotated_on_one_node_is_published_everywhere_before_it_signs,
    |a| {
        let b = a.node().await;
        b.wait_loaded().await;
        let (id, secret) = a.api_client().await;
        let old = kid(&a.access_token(&id, &secret, &[]).await);
        let (status, body) = a
            .admin_call(Method::POST, "/keys/rotate", Some(json!({"alg": "ES256"})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let new = body["items"][0]["kid"].as_str().unwrap().to_owned();
        within_a_second("key rotated on A, in B's JWKS", || async {
            jwks_kids(&b).await.contains(&new)
        })
        .await;
        // Published, not yet signing: both nodes still sign with the old key, which both publish.
        for node in [&a, &b] {
            let token = node.access_token(&id, &secret, &[]).await;
            assert_eq!(kid(&token), old, "a pending key must not sign");
            assert!(jwks_kids(node).await.contains(&new));
        }
        // After the publish delay (the nodes share a clock) both sign with the new key, and each node's token
        // verifies against the other's JWKS.
        a.clock.advance(a.app.admin.key_publish_delay);
        let from_a = a.access_token(&id, &secret, &[]).await;
        let from_b = b.access_token(&id, &secret, &[]).await;
        assert_eq!((kid(&from_a), kid(&from_b)), (new.clone(), new));
        b.verify_jwt(&from_a, "https://api.example.com").await;
        a.verify_jwt(&from_b, "https://api.example.com").await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_and_bootstrap_once() {
    let (name, url) = fresh_pg_database().await;
    let dir = tempfile::tempdir().unwrap();
    // The master key exists before they start, as it would in a deployment's secret store.
    let key = keyward::crypto::random::<32>();
    let key = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
    };
    let config = || {
        let env = [
            ("KEYWARD_DATABASE", url.as_str()),
            ("KEYWARD_DATA_DIR", &dir.path().to_string_lossy()),
            ("KEYWARD_MASTER_KEY", &key),
            ("KEYWARD_DB_MAX_CONNECTIONS", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        config::load(None, &env, &config::Flags::default()).unwrap()
    };
    let configs: Vec<_> = (0..4).map(|_| config()).collect();
    let opened = futures_util::future::join_all(
        configs
            .iter()
            .map(|c| App::open(c, Clock::fixed(Clock::wall()))),
    )
    .await;
    let mut first_starts = 0;
    for o in opened {
        let (app, first) = o.expect("every node starts");
        first_starts += usize::from(first.is_some());
        app.store.close().await;
    }
    assert_eq!(first_starts, 1, "one node runs first start");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let (versions, rows): (i64, i64) =
        sqlx::query_as("SELECT COUNT(DISTINCT version), COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(versions, rows, "each migration applied once");
    let (admins,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM clients")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(admins, 1, "one admin client");
    pool.close().await;
    let admin = sqlx::PgPool::connect(crate::harness::PG_URL).await.unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
}

both_engines!(a_schema_newer_than_the_binary_is_refused, |app| {
    // A later release migrated this database: its version is above every migration this build knows.
    let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES (9999, 'from a later release', TRUE, x'00', 1)";
    if app.database.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&app.database).await.unwrap();
        sqlx::query(&insert.replace("x'00'", "'\\x00'::bytea"))
            .execute(&pool)
            .await
            .unwrap();
    } else {
        let pool = sqlx::SqlitePool::connect(&app.database).await.unwrap();
        sqlx::query(insert).execute(&pool).await.unwrap();
    }
    let env = [
        ("KEYWARD_DATABASE", app.database.as_str()),
        ("KEYWARD_DATA_DIR", &app.dir.path().to_string_lossy()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = config::load(None, &env, &config::Flags::default()).unwrap();
    let err = match App::open(&config, app.clock.clone()).await {
        Ok(_) => panic!("a newer schema must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("schema is at version 9999, newer than this Keyward knows"),
        "{err}"
    );
});

/// Reads one sample of a Prometheus text exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Serves a node's metrics on a free port; returns the scrape URL.
async fn metrics_url(node: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let router = keyward::http::metrics_router(node.app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

both_engines!(one_node_at_a_time_purges_in_batches_and_counts_it, |a| {
    let b = a.node().await;
    b.wait_loaded().await;
    let now = a.clock.now();
    // 1,234 denylist entries whose tokens expired (more than two batches), and one still live.
    let mut tx = a.app.store.begin().await.unwrap();
    for i in 0..1_234 {
        tx.revoke_jti(&format!("expired-{i}"), now - 1)
            .await
            .unwrap();
    }
    tx.revoke_jti("live", now + 600).await.unwrap();
    tx.commit().await.unwrap();
    // Each node's housekeeping has run a round at start; whichever took the lease keeps it.
    let (holder, _) = a.app.store.lease_holder("purge").await.unwrap().unwrap();
    let (holding, other) = if holder == a.app.settings.node_id {
        (&a, &b)
    } else {
        (&b, &a)
    };
    keyward::housekeeping::purge(&other.app).await;
    assert_eq!(
        a.app.store.count_rows("revoked_tokens").await.unwrap(),
        1_235,
        "the node without the lease purges nothing"
    );
    keyward::housekeeping::purge(&holding.app).await;
    assert_eq!(a.app.store.count_rows("revoked_tokens").await.unwrap(), 1);
    assert!(!a.app.store.is_revoked("expired-7").await.unwrap());
    assert!(a.app.store.is_revoked("live").await.unwrap());
    let scraped = reqwest::get(metrics_url(holding).await)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(
            &scraped,
            "keyward_purged_rows_total{table=\"revoked_tokens\"}"
        ),
        1_234.0,
        "{scraped}"
    );
    assert_eq!(sample(&scraped, "keyward_purge_lease_held"), 1.0);
    assert_eq!(sample(&scraped, "keyward_database_up"), 1.0);
    // The holder stops renewing (its lease runs out): the other node takes over.
    a.clock.advance(31);
    keyward::housekeeping::purge(&other.app).await;
    let (holder, _) = a.app.store.lease_holder("purge").await.unwrap().unwrap();
    assert_eq!(holder, other.app.settings.node_id);
});

both_engines!(failed_writes_never_hold_back_the_changes_after_them, |a| {
    let b = polled_node(&a).await;
    b.wait_loaded().await;
    let (id, _) = a.api_client().await;
    let actor = keyward::service::admin::Actor::cli();
    // Twenty admin writes that fail inside their transaction (on PostgreSQL each leaves an unused feed position),
    // then more successful changes than the follower reads in one batch.
    for i in 0..20 {
        let missing = keyward::service::admin::ClientInput {
            name: Some(format!("n{i}")),
            ..Default::default()
        };
        assert!(
            a.app
                .admin
                .client_update(&actor, "no-such-client", missing)
                .await
                .is_err()
        );
    }
    for i in 0..1_001 {
        let rename = keyward::service::admin::ClientInput {
            name: Some(format!("renamed {i}")),
            ..Default::default()
        };
        a.app
            .admin
            .client_update(&actor, &id, rename)
            .await
            .unwrap();
    }
    // A client made by another process (the CLI's path) reaches B within a second.
    let cli = a.unserved_twin().await;
    let (view, secret) = cli
        .admin
        .client_create(
            &actor,
            keyward::service::admin::ClientInput {
                name: Some("made by the CLI".into()),
                resources: Some(vec!["https://api.example.com".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let secret = secret.unwrap();
    within_a_second("a client created after failed writes, on B", || async {
        token_status(&b, &view.client_id, &secret).await == StatusCode::OK
    })
    .await;
});
