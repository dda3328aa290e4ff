//! Rate limits, quotas and the brute-force defence, through HTTP on a real server with a fixed clock (so a
//! limit refills only when the test moves time): 429 with `Retry-After` and the SECURITY.md error, other clients
//! unaffected, per-client overrides, quotas that hold across a restart and across two nodes, failed
//! authentications limited per address and per client without locking the owner out, and `X-Forwarded-For`
//! believed only from trusted proxies.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Engine, TestApp};

/// Runs `$body(engine)` once on SQLite and once on PostgreSQL.
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body(super::Engine::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body(super::Engine::Postgres).await
            }
        }
    };
}

const API: &str = "https://api.example.com";

fn retry_after(r: &Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Asserts the SECURITY.md answer of a limit: 429, `Retry-After`, `rate_limited`, no-store. Returns the wait.
async fn assert_limited(r: Response) -> u64 {
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&r);
    assert!(wait >= 1, "Retry-After {wait}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("retry"),
        "{body}"
    );
    wait
}

/// A client of the `api` resource with `limits` of its own.
async fn limited_client(app: &TestApp, name: &str, limits: Value) -> (String, String) {
    app.client(json!({"name": name, "resources": [API], "scopes": ["read"], "limits": limits}))
        .await
}

/// The admin client is a client like any other: its own limits are lifted first, so the test's admin calls do
/// not spend the limits under test.
async fn unlimited_admin(app: &TestApp) {
    let (status, body) = app
        .admin_call(
            Method::PATCH,
            &format!("/clients/{}", app.admin.client_id),
            Some(json!({"limits": {"token": "off", "tokens_per_hour": 0, "tokens_per_day": 0}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["limits"]["token"], "off", "{body}");
    app.resource(API, &["read"]).await;
}

async fn client_rate_limits(engine: Engine) {
    let app = TestApp::with_env(engine, &[("KEYWARD_RATE_LIMIT_TOKEN_CLIENT", "5/min")]).await;
    unlimited_admin(&app).await;
    let (a, a_secret) = limited_client(&app, "a", json!({})).await;
    let (b, b_secret) = limited_client(&app, "b", json!({})).await;
    for i in 0..5 {
        let r = app.token(&a, &a_secret, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "token {i}");
    }
    // 5 a minute is one every 12 s: the sixth waits 12 s.
    assert_eq!(
        assert_limited(app.token(&a, &a_secret, &[]).await).await,
        12
    );
    // Another client is not affected.
    for _ in 0..5 {
        assert_eq!(app.token(&b, &b_secret, &[]).await.status(), StatusCode::OK);
    }
    // 12 s later exactly one more.
    app.clock.advance(12);
    assert_eq!(app.token(&a, &a_secret, &[]).await.status(), StatusCode::OK);
    assert_limited(app.token(&a, &a_secret, &[]).await).await;
    // A client's own limit wins over the server's, both tighter and lifted.
    let (c, c_secret) = limited_client(&app, "c", json!({"token": "2/min"})).await;
    let (d, d_secret) = limited_client(&app, "d", json!({"token": "off"})).await;
    for _ in 0..2 {
        assert_eq!(app.token(&c, &c_secret, &[]).await.status(), StatusCode::OK);
    }
    assert_eq!(
        assert_limited(app.token(&c, &c_secret, &[]).await).await,
        30
    );
    for _ in 0..12 {
        assert_eq!(app.token(&d, &d_secret, &[]).await.status(), StatusCode::OK);
    }
    // A bad override is refused with a message naming the field.
    let (status, body) = app
        .admin_call(
            Method::PATCH,
            &format!("/clients/{d}"),
            Some(json!({"limits": {"token": "fast"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("rate"), "{body}");
}
on_both!(
    a_client_rate_limit_answers_429_with_retry_after_and_spares_other_clients,
    client_rate_limits
);

async fn quotas(engine: Engine) {
    let env = [("KEYWARD_QUOTA_TOKENS_PER_DAY", "6")];
    let app = TestApp::with_env(engine, &env).await;
    unlimited_admin(&app).await;
    let (a, a_secret) = limited_client(&app, "a", json!({})).await;
    for i in 0..6 {
        // A refused token does not count against the quota.
        let refused = app.token(&a, &a_secret, &[("scope", "write")]).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let r = app.token(&a, &a_secret, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "token {i}");
    }
    let now = app.clock.now();
    let midnight = now - now.rem_euclid(86_400) + 86_400;
    assert_eq!(
        assert_limited(app.token(&a, &a_secret, &[]).await).await,
        (midnight - now) as u64
    );
    // Per hour, the client's own; a quota of 0 lifts the server's.
    let (h, h_secret) = limited_client(&app, "h", json!({"tokens_per_hour": 3})).await;
    for _ in 0..3 {
        assert_eq!(app.token(&h, &h_secret, &[]).await.status(), StatusCode::OK);
    }
    let hour_end = now - now.rem_euclid(3_600) + 3_600;
    assert_eq!(
        assert_limited(app.token(&h, &h_secret, &[]).await).await,
        (hour_end - now) as u64
    );
    let (free, free_secret) = limited_client(&app, "free", json!({"tokens_per_day": 0})).await;
    for _ in 0..10 {
        assert_eq!(
            app.token(&free, &free_secret, &[]).await.status(),
            StatusCode::OK
        );
    }
    // Quotas live in the database: another node (or this one restarted) finds the day's quota spent.
    let other = app.node_with(&env).await;
    assert_limited(other.token(&a, &a_secret, &[]).await).await;
    // The next hour, the hourly quota is back.
    app.clock.advance(hour_end - now);
    assert_eq!(app.token(&h, &h_secret, &[]).await.status(), StatusCode::OK);
}
on_both!(
    token_quotas_per_hour_and_day_hold_and_survive_a_restart,
    quotas
);

/// Sends `n` token requests for each node at once, spread over both; returns how many were accepted.
async fn accepted_across(nodes: [&TestApp; 2], id: &str, secret: &str, n: usize) -> usize {
    let requests = (0..n).flat_map(|_| nodes.iter().map(|node| node.token(id, secret, &[])));
    let answers = futures_util::future::join_all(requests).await;
    let mut ok = 0;
    for r in answers {
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => assert!(r.headers().contains_key("retry-after")),
            other => panic!("unexpected {other}"),
        }
    }
    ok
}

async fn two_nodes(engine: Engine) {
    // Rates are shared through the database on both engines here (SQLite's default is per node).
    let env = [("KEYWARD_RATE_LIMIT_SHARING", "database")];
    let a = TestApp::with_env(engine, &env).await;
    let b = a.node_with(&env).await;
    b.wait_loaded().await;
    unlimited_admin(&a).await;
    let (r, r_secret) = limited_client(&a, "rate", json!({"token": "20/min"})).await;
    let (q, q_secret) = limited_client(&a, "quota", json!({"tokens_per_hour": 30})).await;
    crate::harness::eventually(
        std::time::Duration::from_secs(2),
        "the clients reach node B",
        || async { b.token(&q, &q_secret, &[]).await.status() == StatusCode::OK },
    )
    .await;
    // The documented tolerance of a shared rate: one lease of credit per node (a lease of 20/min is 1 cell), and
    // below it the cells a node leased and did not spend.
    let rate = accepted_across([&a, &b], &r, &r_secret, 30).await;
    eprintln!("two nodes, 20/min: {rate} of 60 accepted");
    assert!(
        (18..=22).contains(&rate),
        "{rate} accepted for a limit of 20"
    );
    // A quota is leased before it is spent: never more than the quota (one token went to the wait above).
    let quota = 1 + accepted_across([&a, &b], &q, &q_secret, 30).await;
    eprintln!("two nodes, 30 per hour: {quota} of 61 accepted");
    assert!(
        (28..=30).contains(&quota),
        "{quota} accepted for a quota of 30"
    );
}
on_both!(limits_and_quotas_hold_across_two_nodes, two_nodes);

/// A token request from `address` (as the trusted proxy at 127.0.0.1 forwards it).
async fn token_from(app: &TestApp, address: &str, id: &str, secret: &str) -> Response {
    app.http
        .post(app.url("/oauth2/token"))
        .header("x-forwarded-for", address)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

async fn failed_by_address(engine: Engine) {
    let app = TestApp::with_env(engine, &[("KEYWARD_TRUSTED_PROXIES", "127.0.0.1")]).await;
    app.resource(API, &["read"]).await;
    let (x, x_secret) = limited_client(&app, "x", json!({})).await;
    let attacker = "198.51.100.1";
    // An unknown client and a wrong secret: the same answer, byte for byte.
    let mut bodies = std::collections::HashSet::new();
    for i in 0..20 {
        let (id, secret) = if i % 2 == 0 {
            (x.as_str(), "kw_sk_wrong")
        } else {
            ("no-such-client", x_secret.as_str())
        };
        let r = token_from(&app, attacker, id, secret).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
        bodies.insert(r.text().await.unwrap());
    }
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    // 20 a minute: refused from the 21st (the 22nd where the database shares the count: one lease of credit).
    let mut refused = None;
    for i in 20..23 {
        let r = token_from(&app, attacker, "no-such-client", "kw_sk_guess").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((i, assert_limited(r).await));
            break;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let (at, wait) = refused.expect("refused after 20 failures");
    eprintln!(
        "failed authentications: refused at attempt {}, Retry-After {wait}",
        at + 1
    );
    // Refused from that address even with the right secret; not from another address.
    assert_limited(token_from(&app, attacker, &x, &x_secret).await).await;
    let r = token_from(&app, "198.51.100.2", &x, &x_secret).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Once the limit has refilled, the address may try again.
    app.clock.advance(60);
    let r = token_from(&app, attacker, &x, &x_secret).await;
    assert_eq!(r.status(), StatusCode::OK);
}
on_both!(
    failed_authentications_are_limited_per_address_and_unknown_equals_wrong,
    failed_by_address
);

async fn failed_by_client(engine: Engine) {
    let app = TestApp::with_env(
        engine,
        &[
            ("KEYWARD_TRUSTED_PROXIES", "127.0.0.1"),
            ("KEYWARD_FAILED_AUTH_LIMIT_CLIENT", "5/min"),
            ("KEYWARD_FAILED_AUTH_LIMIT_ADDRESS", "off"),
        ],
    )
    .await;
    app.resource(API, &["read"]).await;
    let (x, x_secret) = limited_client(&app, "x", json!({})).await;
    let (y, y_secret) = limited_client(&app, "y", json!({})).await;
    let owner = "203.0.113.5";
    assert_eq!(
        token_from(&app, owner, &x, &x_secret).await.status(),
        StatusCode::OK
    );
    // A guesser spreads over many addresses: once the client's failures are spent, new addresses are refused.
    let mut statuses = Vec::new();
    for i in 1..=12 {
        let r = token_from(&app, &format!("198.51.100.{i}"), &x, "kw_sk_guess").await;
        statuses.push(r.status().as_u16());
    }
    let failed = statuses.iter().filter(|s| **s == 401).count();
    assert!((5..=6).contains(&failed), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // The owner's address, which has authenticated as this client, is not locked out.
    assert_eq!(
        token_from(&app, owner, &x, &x_secret).await.status(),
        StatusCode::OK
    );
    // An address new to this client waits until the attack subsides, right secret or not.
    assert_limited(token_from(&app, "203.0.113.77", &x, &x_secret).await).await;
    // Other clients are not affected, even from the guesser's addresses.
    assert_eq!(
        token_from(&app, "198.51.100.1", &y, &y_secret)
            .await
            .status(),
        StatusCode::OK
    );
}
on_both!(
    failed_authentications_per_client_never_lock_out_its_known_addresses,
    failed_by_client
);

async fn spoofing(engine: Engine) {
    // No trusted proxy (the default), or one that is not the peer: X-Forwarded-For is ignored.
    for proxies in [None, Some("10.0.0.0/8")] {
        let env: Vec<(&str, &str)> = proxies
            .map(|p| ("KEYWARD_TRUSTED_PROXIES", p))
            .into_iter()
            .collect();
        let app = TestApp::with_env(engine, &env).await;
        let mut statuses = Vec::new();
        for i in 0..23 {
            let r = token_from(&app, &format!("198.51.100.{i}"), "nobody", "kw_sk_guess").await;
            statuses.push(r.status().as_u16());
        }
        // Every guess counted against 127.0.0.1, whatever the header said.
        assert!(
            statuses.iter().filter(|s| **s == 401).count() <= 21,
            "{statuses:?}"
        );
        assert_eq!(statuses.last(), Some(&429), "{proxies:?}: {statuses:?}");
    }
}
on_both!(
    a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing,
    spoofing
);

// Introspection and revocation have limits of their own, per address here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_has_its_own_address_limit() {
    let app = TestApp::with_env(
        Engine::Sqlite,
        &[("KEYWARD_RATE_LIMIT_INTROSPECT_ADDRESS", "3/min")],
    )
    .await;
    let (id, secret) = app.api_client().await;
    let token = app.access_token(&id, &secret, &[]).await;
    let form = [("token", token.as_str())];
    let introspect = || app.post_form("/oauth2/introspect", Some((&id, &secret)), &form);
    for _ in 0..3 {
        let r = introspect().await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(assert_limited(introspect().await).await, 20);
    // The token endpoint and revocation are not limited by it.
    assert_eq!(app.token(&id, &secret, &[]).await.status(), StatusCode::OK);
    let r = app
        .post_form("/oauth2/revoke", Some((&id, &secret)), &[("token", &token)])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn unreachable(engine: Engine) {
    let app = TestApp::with_env(engine, &[("KEYWARD_RATE_LIMIT_SHARING", "database")]).await;
    app.resource(API, &["read"]).await;
    let (r, r_secret) = limited_client(&app, "rate", json!({"token": "5/min"})).await;
    let (q, q_secret) = limited_client(&app, "quota", json!({"tokens_per_hour": 3})).await;
    app.wait_loaded().await;
    // The database goes away: tokens keep coming from memory (stale_while_unreachable), and every lease fails.
    app.app.store.close().await;
    let statuses = |id: String, secret: String, n: usize| {
        let app = &app;
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(app.token(&id, &secret, &[]).await.status().as_u16());
            }
            out
        }
    };
    // Each node enforces the limits alone meanwhile: the rate's burst, the quota's count, then 429.
    let rate = statuses(r.clone(), r_secret.clone(), 8).await;
    assert_eq!(rate, [200, 200, 200, 200, 200, 429, 429, 429], "{rate:?}");
    let quota = statuses(q.clone(), q_secret.clone(), 5).await;
    assert_eq!(quota, [200, 200, 200, 429, 429], "{quota:?}");
    let failures = app.app.metrics.render();
    assert!(
        failures
            .lines()
            .any(|l| l.starts_with("keyward_limit_lease_failures_total ") && !l.ends_with(" 0")),
        "{failures}"
    );
}
on_both!(
    with_the_database_unreachable_each_node_enforces_the_limits_alone,
    unreachable
);
