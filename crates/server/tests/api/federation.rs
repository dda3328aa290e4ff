//! Workload identity federation through the real server: a test OpenID Connect issuer of its own (its own RSA key,
//! discovery and JWKS over HTTPS on loopback, with a test CA Keyward trusts through `extra_ca_file`) signs
//! platform tokens the way GitHub Actions and Kubernetes do; a client with a federated credential gets tokens for
//! them, sent as its client assertion, and nothing else gets one: an untrusted issuer, a wrong audience, a failed
//! condition, an expired or replayed token, a forged signature, an issuer whose discovery names another issuer.

use std::sync::Arc;

use axum::Json;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::client_assertions::with_assertion;
use crate::harness::{Engine, TestApp};
use crate::jws::TestKey;
use crate::tls::TestCa;

const API: &str = "https://api.example.com";

/// A running test issuer: its URL and its signing key.
pub(crate) struct Issuer {
    pub(crate) url: String,
    key: Arc<TestKey>,
}

impl Issuer {
    /// Serves discovery naming `names` as the issuer (the URL itself when `None`) and the JWKS.
    pub(crate) async fn start(ca: &TestCa, names: Option<&str>) -> Self {
        let key = Arc::new(TestKey::rs256());
        let url_slot: Arc<std::sync::OnceLock<String>> = Arc::default();
        let jwk = {
            let mut j = key.jwk("gh-1");
            // Platforms often leave `alg` out of their JWKS (Entra ID does); the key type implies RS256.
            j.as_object_mut().unwrap().remove("alg");
            j
        };
        let named = names.map(str::to_owned);
        let slot = url_slot.clone();
        let router = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let url = slot.get().cloned().unwrap_or_default();
                    let issuer = named.clone().unwrap_or_else(|| url.clone());
                    async move { Json(json!({"issuer": issuer, "jwks_uri": format!("{url}/keys")})) }
                }),
            )
            .route(
                "/keys",
                get(move || {
                    let jwk = jwk.clone();
                    async move { Json(json!({"keys": [jwk]})) }
                }),
            );
        let url = ca.serve(router).await;
        url_slot.set(url.clone()).unwrap();
        Issuer { url, key }
    }

    /// A platform token with `claims` over the defaults (this issuer, `aud` kw-test, an hour of life, a `jti`).
    pub(crate) fn token(&self, now: i64, claims: Value) -> String {
        let mut c = json!({"iss": self.url, "aud": "kw-test", "sub": "repo:acme/shop:ref:refs/heads/main",
                           "repository": "acme/shop", "ref": "refs/heads/main", "iat": now, "nbf": now,
                           "exp": now + 3_600, "jti": keyward::crypto::random_id("gh_")});
        for (k, v) in claims.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        self.key.jws(json!({"kid": "gh-1", "typ": "JWT"}), &c)
    }
}

pub(crate) async fn exchange(app: &TestApp, client: &str, token: &str) -> reqwest::Response {
    with_assertion(
        app,
        "/oauth2/token",
        token,
        Some(client),
        &[("grant_type", "client_credentials")],
    )
    .await
}

async fn federated_tokens_authenticate_only_what_the_credential_names(engine: Engine) {
    let ca = TestCa::new();
    let trusted = Issuer::start(&ca, None).await;
    let untrusted = Issuer::start(&ca, None).await;
    let ca_file = ca.pem_file.to_string_lossy().into_owned();
    let app = TestApp::with_env(
        engine,
        &[
            ("KEYWARD_EXTRA_CA_FILE", &ca_file),
            crate::tls::ALLOW_LOOPBACK,
        ],
    )
    .await;
    app.resource(API, &["read"]).await;
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/clients",
            Some(json!({"name": "deploys", "resources": [API], "scopes": ["read"],
                        "token_endpoint_auth_method": "private_key_jwt",
                        "federated_credentials": [{"name": "main-branch", "issuer": trusted.url,
                            "audience": "kw-test", "claims": {"repository": "acme/shop", "ref": "refs/heads/main"}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["client_secret"].is_null());
    assert_eq!(body["federated_credentials"][0]["name"], "main-branch");
    let id = body["client_id"].as_str().unwrap().to_owned();
    let now = app.clock.now();

    let good = trusted.token(now, json!({}));
    let r = exchange(&app, &id, &good).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        crate::harness::claims(body["access_token"].as_str().unwrap())["client_id"],
        json!(id)
    );

    // Each of these is refused with the same answer.
    let mut forged = vec![
        ("replayed jti", good.clone()),
        (
            "untrusted issuer",
            untrusted.token(now, json!({"iss": untrusted.url})),
        ),
        (
            "trusted issuer named, signed by another",
            untrusted.token(now, json!({"iss": trusted.url})),
        ),
        (
            "wrong audience",
            trusted.token(now, json!({"aud": "someone-else"})),
        ),
        (
            "another repository",
            trusted.token(now, json!({"repository": "acme/other"})),
        ),
        (
            "another branch",
            trusted.token(now, json!({"ref": "refs/heads/dev"})),
        ),
        (
            "condition missing",
            trusted.token(now, json!({"ref": null})),
        ),
        ("expired", trusted.token(now, json!({"exp": now - 60}))),
        (
            "not yet valid",
            trusted.token(now, json!({"nbf": now + 600})),
        ),
    ];
    // Without a client_id the platform token names no client.
    let r = with_assertion(
        &app,
        "/oauth2/token",
        &trusted.token(now, json!({})),
        None,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let mut bodies = Vec::new();
    for (why, token) in forged.drain(..) {
        let r = exchange(&app, &id, &token).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{why}");
        bodies.push((why, r.text().await.unwrap()));
    }
    for (why, body) in &bodies {
        assert_eq!(body, &bodies[0].1, "{why}");
    }
    // A token without a jti may be exchanged again (Kubernetes' older tokens carry none).
    let no_jti = trusted.token(now, json!({"jti": null}));
    for _ in 0..2 {
        assert_eq!(exchange(&app, &id, &no_jti).await.status(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_sqlite() {
    federated_tokens_authenticate_only_what_the_credential_names(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_postgres() {
    federated_tokens_authenticate_only_what_the_credential_names(Engine::Postgres).await;
}

/// An issuer whose discovery document names another issuer is not trusted (OpenID Connect Discovery §4.3), an
/// issuer whose certificate Keyward cannot verify is not fetched, and neither is one on a loopback address unless
/// `outbound_private_addresses` allows it: each token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_is_trusted_only_as_its_discovery_names_it() {
    let ca = TestCa::new();
    let liar = Issuer::start(&ca, Some("https://token.actions.githubusercontent.com")).await;
    // Keyward does not trust this CA here, so even an honest issuer on it cannot be reached.
    let honest = Issuer::start(&TestCa::new(), None).await;
    let ca_file = ca.pem_file.to_string_lossy().into_owned();
    let app = TestApp::with_env(
        Engine::Sqlite,
        &[
            ("KEYWARD_EXTRA_CA_FILE", &ca_file),
            crate::tls::ALLOW_LOOPBACK,
        ],
    )
    .await;
    app.resource(API, &["read"]).await;
    let credential = |name: &str, url: &str| json!({"name": name, "issuer": url, "audience": "kw-test", "subject": "repo:acme/shop:ref:refs/heads/main"});
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/clients",
            Some(json!({"name": "w", "resources": [API], "token_endpoint_auth_method": "private_key_jwt",
                        "federated_credentials": [credential("liar", &liar.url), credential("honest", &honest.url)]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["client_id"].as_str().unwrap().to_owned();
    let now = app.clock.now();
    for issuer in [&liar, &honest] {
        let r = exchange(&app, &id, &issuer.token(now, json!({}))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{}", issuer.url);
    }
    // A trusted, honest issuer on a loopback address, on a server that fetches from public addresses only (the
    // default): not fetched, so its tokens are refused.
    let local = Issuer::start(&ca, None).await;
    let app = TestApp::with_env(Engine::Sqlite, &[("KEYWARD_EXTRA_CA_FILE", &ca_file)]).await;
    app.resource(API, &["read"]).await;
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/clients",
            Some(json!({"name": "w", "resources": [API], "token_endpoint_auth_method": "private_key_jwt",
                        "federated_credentials": [credential("local", &local.url)]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["client_id"].as_str().unwrap().to_owned();
    let r = exchange(&app, &id, &local.token(app.clock.now(), json!({}))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// A proof refused for its nonce costs the client nothing it cannot send again: the platform token (whose `jti`
/// is accepted once) is not spent, so the retry with the nonce and the same token succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_challenge_does_not_spend_the_platform_token() {
    let ca = TestCa::new();
    let issuer = Issuer::start(&ca, None).await;
    let ca_file = ca.pem_file.to_string_lossy().into_owned();
    let app = TestApp::with_env(
        Engine::Sqlite,
        &[
            ("KEYWARD_EXTRA_CA_FILE", &ca_file),
            ("KEYWARD_DPOP_NONCE_INTERVAL", "60s"),
            crate::tls::ALLOW_LOOPBACK,
        ],
    )
    .await;
    app.resource(API, &["read"]).await;
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/clients",
            Some(json!({"name": "pods", "resources": [API], "token_endpoint_auth_method": "private_key_jwt",
                        "federated_credentials": [{"name": "sa", "issuer": issuer.url, "audience": "kw-test",
                                                   "subject": "repo:acme/shop:ref:refs/heads/main"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["client_id"].as_str().unwrap().to_owned();
    let platform_token = issuer.token(app.clock.now(), json!({}));
    let url = app.url("/oauth2/token");
    let key = TestKey::es256();
    let send = |proof: String| {
        app.http
            .post(&url)
            .header("DPoP", proof)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_assertion_type", crate::client_assertions::BEARER),
                ("client_assertion", platform_token.as_str()),
            ])
            .send()
    };
    let r = send(crate::dpop_issue::proof(
        &key,
        "POST",
        &url,
        app.clock.now(),
        json!({}),
    ))
    .await
    .unwrap();
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "use_dpop_nonce");
    let r = send(crate::dpop_issue::proof(
        &key,
        "POST",
        &url,
        app.clock.now(),
        json!({"nonce": nonce}),
    ))
    .await
    .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
}
