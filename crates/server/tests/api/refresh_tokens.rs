//! Refresh tokens: introspected by the client they were issued to (RFC 7662 §2.1) and by nobody else, inactive once
//! spent, revoked or expired; an idle timeout (RFC 9700 §4.14.2, `refresh_token_idle_ttl`); a family refreshed many
//! times stays one row, reuse detection still revoking it; tokens of the earlier form (one row each) still work.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::{Engine, TestApp, assert_error, claims};
use crate::oauth_agent::*;

/// Introspects `token` as `id`/`secret`.
async fn introspect(app: &TestApp, id: &str, secret: &str, token: &str) -> Value {
    let r = app
        .post_form(
            "/oauth2/introspect",
            Some((id, secret)),
            &[("token", token), ("token_type_hint", "refresh_token")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// A grant's first refresh token (and access token), through the consent flow.
async fn grant(app: &TestApp, f: &Fixture, agent: &Agent) -> (String, String) {
    let p = pkce();
    let code = agent
        .code(app, &request(&f.id, &p.challenge, "s"), EMAIL)
        .await;
    let (access, refresh, _) = tokens(redeem(app, f.basic(), &code, &p.verifier).await).await;
    (access, refresh)
}

/// The test's database, as a pool of its own engine.
enum Pool {
    Pg(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// Runs the same expression on whichever pool `$pool` is.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            Pool::Pg($p) => $body,
            Pool::Sqlite($p) => $body,
        }
    };
}

async fn pool(app: &TestApp) -> Pool {
    if app.database.starts_with("postgres") {
        Pool::Pg(sqlx::PgPool::connect(&app.database).await.unwrap())
    } else {
        Pool::Sqlite(
            sqlx::SqlitePool::connect(&format!("sqlite://{}", app.database))
                .await
                .unwrap(),
        )
    }
}

/// Rows in a table of the test's database.
async fn rows(app: &TestApp, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let (n,): (i64,) = on_pool!(&pool(app).await, |p| sqlx::query_as(&sql)
        .fetch_one(p)
        .await
        .unwrap());
    n
}

both_engines!(
    refresh_tokens_are_introspected_by_their_client_only,
    |app| {
        let f = fixture(&app).await;
        let agent = Agent::new(&app);
        agent.sign_in(EMAIL).await;
        let (_, r0) = grant(&app, &f, &agent).await;

        // The client it was issued to: active, with the RFC 7662 members.
        let v = introspect(&app, &f.id, &f.secret, &r0).await;
        assert_eq!(v["active"], true, "{v}");
        assert_eq!(v["token_type"], "refresh_token");
        assert_eq!(v["client_id"], f.id.as_str());
        assert_eq!(v["sub"], f.account.as_str());
        assert_eq!(v["scope"], SCOPE);
        assert_eq!(v["aud"], API);
        assert_eq!(v["iss"], app.app.settings.issuer.as_str());
        let iat = v["iat"].as_i64().unwrap();
        assert_eq!(iat, app.clock.now());
        assert_eq!(v["exp"].as_i64().unwrap(), iat + 365 * 86_400);
        assert!(v.get("jti").is_none(), "{v}");

        // Anyone else, even a resource server of its audience or the admin client: inactive, nothing more.
        let (rs, rs_secret) = app
            .client(json!({"name": "orders api", "resources": [], "serves_resources": [API]}))
            .await;
        let (other, other_secret) = app.client(app_spec("Other app", &[REDIRECT])).await;
        for (id, secret) in [
            (rs.as_str(), rs_secret.as_str()),
            (&other, &other_secret),
            (&app.admin.client_id, &app.admin.client_secret),
        ] {
            assert_eq!(
                introspect(&app, id, secret, &r0).await,
                json!({"active": false})
            );
        }
        // A public client cannot introspect at all (RFC 7662 §2.1): its id proves nothing.
        let mut spec = app_spec("Mobile app", &[REDIRECT]);
        spec["client_type"] = json!("public");
        let (_, body) = app.admin_call(Method::POST, "/clients", Some(spec)).await;
        let public = body["client_id"].as_str().unwrap().to_owned();
        let r = app
            .post_form(
                "/oauth2/introspect",
                None,
                &[("client_id", &public), ("token", &r0)],
            )
            .await;
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;

        // Spent by a refresh: the old token is inactive, the new one active and issued now.
        app.clock.advance(30);
        let (_, r1, _) = tokens(refresh(&app, f.basic(), &r0, None).await).await;
        assert_eq!(
            introspect(&app, &f.id, &f.secret, &r0).await,
            json!({"active": false})
        );
        let v = introspect(&app, &f.id, &f.secret, &r1).await;
        assert_eq!(v["active"], true, "{v}");
        assert_eq!(v["iat"].as_i64().unwrap(), app.clock.now());
        assert_eq!(
            v["exp"].as_i64().unwrap(),
            iat + 365 * 86_400,
            "rotation never extends"
        );

        // Revoked: inactive.
        let (_, r2) = grant(&app, &f, &agent).await;
        app.revoke(&f.id, &f.secret, &r2).await;
        assert_eq!(
            introspect(&app, &f.id, &f.secret, &r2).await,
            json!({"active": false})
        );
        // Expired: inactive once the grant's lifetime is over.
        app.clock.advance(365 * 86_400);
        assert_eq!(
            introspect(&app, &f.id, &f.secret, &r1).await,
            json!({"active": false})
        );
        // Garbage and forgeries: inactive.
        for junk in ["kwr_", "kwr_abc", &format!("{}x", &r1[..r1.len() - 1])] {
            assert_eq!(
                introspect(&app, &f.id, &f.secret, junk).await,
                json!({"active": false})
            );
        }
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_what_each_endpoint_accepts() {
    let app = TestApp::sqlite().await;
    let m: Value = app
        .get_json(&app.url("/.well-known/oauth-authorization-server"))
        .await;
    let list = |k: &str| -> Vec<String> {
        m[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        list("token_endpoint_auth_methods_supported"),
        [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none"
        ]
    );
    assert_eq!(
        list("revocation_endpoint_auth_methods_supported"),
        [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none"
        ]
    );
    assert_eq!(
        list("introspection_endpoint_auth_methods_supported"),
        [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ]
    );
}

/// A server with a one-minute idle timeout for refresh tokens.
async fn with_idle_timeout(engine: Engine) -> TestApp {
    TestApp::with_env(engine, &[("KEYWARD_REFRESH_TOKEN_IDLE_TTL", "60s")]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_sqlite() {
    idle_timeout(with_idle_timeout(Engine::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_postgres() {
    idle_timeout(with_idle_timeout(Engine::Postgres).await).await;
}

async fn idle_timeout(app: TestApp) {
    let f = fixture(&app).await;
    let agent = Agent::new(&app);
    agent.sign_in(EMAIL).await;
    let (_, r0) = grant(&app, &f, &agent).await;
    let v = introspect(&app, &f.id, &f.secret, &r0).await;
    assert_eq!(v["exp"].as_i64().unwrap(), app.clock.now() + 60, "{v}");
    // Used within the minute: works, and the minute starts again.
    app.clock.advance(59);
    let (_, r1, _) = tokens(refresh(&app, f.basic(), &r0, None).await).await;
    app.clock.advance(59);
    let (_, r2, _) = tokens(refresh(&app, f.basic(), &r1, None).await).await;
    // Idle a minute: refused, inactive, and the family is not revoked for it (nothing was replayed).
    app.clock.advance(60);
    assert_eq!(
        introspect(&app, &f.id, &f.secret, &r2).await,
        json!({"active": false})
    );
    let r = refresh(&app, f.basic(), &r2, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let (_, grants) = app
        .admin_call(Method::GET, &format!("/grants?client_id={}", f.id), None)
        .await;
    assert!(grants["items"][0]["revoked_at"].is_null(), "{grants}");
    // Nor is it listed as live.
    let (_, live) = app
        .admin_call(
            Method::GET,
            &format!("/grants?client_id={}&live=true", f.id),
            None,
        )
        .await;
    assert_eq!(live["items"], json!([]), "{live}");
}

both_engines!(a_family_refreshed_many_times_stays_one_row, |app| {
    let f = fixture(&app).await;
    let agent = Agent::new(&app);
    agent.sign_in(EMAIL).await;
    let (first_access, r0) = grant(&app, &f, &agent).await;
    let mut token = r0.clone();
    let mut spent = Vec::new();
    let mut accesses = vec![first_access];
    for _ in 0..50 {
        app.clock.advance(60);
        let (access, next, _) = tokens(refresh(&app, f.basic(), &token, None).await).await;
        spent.push(std::mem::replace(&mut token, next));
        accesses.push(access);
    }
    // No row per refresh token: one grant, the access tokens still alive, nothing in the earlier table.
    assert_eq!(rows(&app, "grants").await, 1);
    assert_eq!(rows(&app, "refresh_tokens").await, 0);
    let live = rows(&app, "grant_tokens").await;
    assert!(live <= 51, "{live}");
    // Expired access tokens' records go with the purge.
    app.clock.advance(900 + 60);
    keyward::housekeeping::purge(&app.app).await;
    assert_eq!(rows(&app, "grant_tokens").await, 0);
    // Reuse detection still sees every spent token: one from the middle revokes the family.
    app.clock.advance(-(900 + 60));
    let (last_access, newest, _) = tokens(refresh(&app, f.basic(), &token, None).await).await;
    assert!(active(&app, &f, &last_access).await);
    let r = refresh(&app, f.basic(), &spent[17], None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let r = refresh(&app, f.basic(), &newest, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(!active(&app, &f, &last_access).await);
    assert_eq!(claims(&last_access)["client_id"], f.id.as_str());
});

both_engines!(refresh_tokens_of_the_earlier_form_still_work, |app| {
    let f = fixture(&app).await;
    let agent = Agent::new(&app);
    agent.sign_in(EMAIL).await;
    // A grant whose live token is of the earlier form (a row of `refresh_tokens`), as a database migrated from an
    // earlier release holds it.
    let (access, current) = grant(&app, &f, &agent).await;
    let legacy = keyward::crypto::new_token("kwr_");
    let (_, grants) = app
        .admin_call(Method::GET, &format!("/grants?client_id={}", f.id), None)
        .await;
    let grant_id = grants["items"][0]["grant_id"]
        .as_str()
        .or(grants["items"][0]["id"].as_str())
        .unwrap()
        .to_owned();
    let digest = app.app.master.digest(&legacy).to_vec();
    let insert = "INSERT INTO refresh_tokens (digest, grant_id, created_at, access_jti, access_expires_at) \
                  VALUES ($1, $2, $3, $4, $5)";
    let jti = claims(&access)["jti"].as_str().unwrap().to_owned();
    let exp = claims(&access)["exp"].as_i64().unwrap();
    on_pool!(&pool(&app).await, |p| sqlx::query(insert)
        .bind(&digest)
        .bind(&grant_id)
        .bind(app.clock.now())
        .bind(&jti)
        .bind(exp)
        .execute(p)
        .await
        .unwrap()
        .rows_affected());
    // As a node of the earlier release writes a grant during a rolling upgrade: no instance, no last use.
    let earlier = "UPDATE grants SET client_instance = 0, refreshed_at = 0 WHERE id = $1";
    on_pool!(&pool(&app).await, |p| sqlx::query(earlier)
        .bind(&grant_id)
        .execute(p)
        .await
        .unwrap()
        .rows_affected());
    assert_eq!(
        introspect(&app, &f.id, &f.secret, &legacy).await["active"],
        true
    );
    // Used: a token of the current form comes back, and the earlier one is spent; its access token is the
    // client's (active at introspection).
    let (next_access, next, _) = tokens(refresh(&app, f.basic(), &legacy, None).await).await;
    assert!(active(&app, &f, &next_access).await);
    assert_ne!(next.len(), legacy.len());
    assert_eq!(
        introspect(&app, &f.id, &f.secret, &legacy).await,
        json!({"active": false})
    );
    // The token issued with the code was of this grant's generation 0, now spent by the move.
    assert_eq!(
        introspect(&app, &f.id, &f.secret, &current).await,
        json!({"active": false})
    );
    // Replayed: the family goes, the earlier token's access token with it.
    let r = refresh(&app, f.basic(), &legacy, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let r = refresh(&app, f.basic(), &next, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(!active(&app, &f, &access).await);
});
