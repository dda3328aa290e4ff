//! `private_key_jwt` (RFC 7523 §2.2) through the real server: a client registered with public keys (inline or at
//! a `jwks_uri` served over HTTPS by the test) authenticates at the token, introspection and revocation endpoints
//! with assertions it signs; every forged or wrong assertion gets the same 401 `invalid_client`; a `jti` is spent
//! once across nodes; keys rotate by replacing the JWK Set.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::{Engine, TestApp};
use crate::jws::{TestKey, hs256, unsigned};
use crate::tls::TestCa;

pub const API: &str = "https://api.example.com";
pub const BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Claims of a good assertion from `client` for `aud`, valid from now for a minute, with a fresh `jti`.
pub fn claims(app: &TestApp, client: &str, aud: &str) -> Value {
    let now = app.clock.now();
    json!({"iss": client, "sub": client, "aud": aud, "iat": now, "exp": now + 60,
           "jti": keyward::crypto::random_id("j_")})
}

/// Posts a client_credentials request authenticated by `assertion` (and `client_id` when given).
pub async fn with_assertion(
    app: &TestApp,
    path: &str,
    assertion: &str,
    client_id: Option<&str>,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("client_assertion_type", BEARER),
        ("client_assertion", assertion),
    ];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    form.extend_from_slice(extra);
    app.post_form(path, None, &form).await
}

pub async fn token_with(app: &TestApp, assertion: &str) -> reqwest::Response {
    with_assertion(
        app,
        "/oauth2/token",
        assertion,
        None,
        &[("grant_type", "client_credentials")],
    )
    .await
}

/// Creates a client that authenticates by private_key_jwt with `jwks`; returns its id.
pub async fn key_client(app: &TestApp, name: &str, keys: Value) -> String {
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/clients",
            Some(json!({"name": name, "resources": [API], "scopes": ["read"],
                        "token_endpoint_auth_method": "private_key_jwt", "jwks": keys})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["client_secret"].is_null(),
        "a key client holds no secret: {body}"
    );
    assert_eq!(body["token_endpoint_auth_method"], "private_key_jwt");
    body["client_id"].as_str().unwrap().to_owned()
}

pub async fn refused(r: reqwest::Response) -> Value {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    body
}

both_engines!(
    private_key_jwt_authenticates_and_refuses_every_forgery,
    |app| {
        app.resource(API, &["read"]).await;
        let token_url = app.url("/oauth2/token");
        let discovery: Value = app
            .get_json(&app.url("/.well-known/oauth-authorization-server"))
            .await;
        let issuer = discovery["issuer"].as_str().unwrap().to_owned();
        assert!(
            discovery["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("private_key_jwt"))
        );
        assert_eq!(
            discovery["token_endpoint_auth_signing_alg_values_supported"],
            json!(["ES256", "PS256", "RS256", "EdDSA"])
        );

        // One key of each algorithm; each signs an assertion that is accepted, the issuer or the token endpoint as
        // its audience.
        let keys = [
            TestKey::es256(),
            TestKey::eddsa(),
            TestKey::rs256(),
            TestKey::ps256(),
        ];
        let jwks: Vec<Value> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| k.jwk(&format!("k{i}")))
            .collect();
        let id = key_client(&app, "signer", json!({ "keys": jwks })).await;
        for (i, key) in keys.iter().enumerate() {
            let aud = if i % 2 == 0 { &token_url } else { &issuer };
            let a = key.jws(json!({"kid": format!("k{i}")}), &claims(&app, &id, aud));
            let r = token_with(&app, &a).await;
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["token_type"], "Bearer", "{} {body}", key.alg());
            // Replayed: the jti is spent.
            refused(token_with(&app, &a).await).await;
        }

        // Forgeries and wrong values: each refused, all with the same body.
        let es = &keys[0];
        let good = || claims(&app, &id, &token_url);
        let with = |change: &dyn Fn(&mut Value)| {
            let mut c = good();
            change(&mut c);
            es.jws(json!({"kid": "k0"}), &c)
        };
        let other_client =
            key_client(&app, "other", json!({"keys": [TestKey::es256().jwk("k0")]})).await;
        let stranger = TestKey::es256();
        let now = app.clock.now();
        let forged = [
            (
                "audience",
                with(&|c| c["aud"] = json!("https://elsewhere.example/token")),
            ),
            ("expired", with(&|c| c["exp"] = json!(now - 60))),
            ("too long", with(&|c| c["exp"] = json!(now + 3_600))),
            (
                "exp at the end of time",
                with(&|c| c["exp"] = json!(i64::MAX)),
            ),
            ("future iat", with(&|c| c["iat"] = json!(now + 600))),
            (
                "no jti",
                with(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
            ),
            ("iss of another", with(&|c| c["sub"] = json!(other_client))),
            ("alg none", unsigned(&good())),
            (
                "HS256 keyed with the public key",
                hs256(es.jwk("k0").to_string().as_bytes(), &good()),
            ),
            ("another key", stranger.jws(json!({"kid": "k0"}), &good())),
            ("unknown kid", es.jws(json!({"kid": "nope"}), &good())),
            (
                "alg not the key's",
                keys[2].jws(json!({"kid": "k0", "alg": "RS256"}), &good()),
            ),
            (
                "typ of a token",
                es.jws(json!({"kid": "k0", "typ": "at+jwt"}), &good()),
            ),
            ("not a JWT", "abc.def".to_owned()),
        ];
        let mut bodies = Vec::new();
        for (why, assertion) in &forged {
            let r = token_with(&app, assertion).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{why}");
            bodies.push((why, r.text().await.unwrap()));
        }
        for (why, body) in &bodies {
            assert_eq!(body, &bodies[0].1, "{why} answered differently");
        }
        // The other client's own assertion, presented with this client's id, is refused too.
        let theirs = TestKey::es256().jws(
            json!({"kid": "k0"}),
            &claims(&app, &other_client, &token_url),
        );
        refused(
            with_assertion(
                &app,
                "/oauth2/token",
                &theirs,
                Some(&id),
                &[("grant_type", "client_credentials")],
            )
            .await,
        )
        .await;

        // Mixing methods is a malformed request, not an authentication.
        let a = es.jws(json!({"kid": "k0"}), &good());
        let mixed = app
            .post_form(
                "/oauth2/token",
                Some((&id, "secret")),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", BEARER),
                    ("client_assertion", &a),
                ],
            )
            .await;
        assert_eq!(mixed.status(), StatusCode::BAD_REQUEST);
        // The refused mix spent nothing: the assertion alone still works.
        let alone = with_assertion(
            &app,
            "/oauth2/token",
            &a,
            None,
            &[("grant_type", "client_credentials")],
        );
        assert_eq!(alone.await.status(), StatusCode::OK);
        let r = app
            .post_form(
                "/oauth2/token",
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", "urn:example:saml"),
                    ("client_assertion", &es.jws(json!({"kid": "k0"}), &good())),
                ],
            )
            .await;
        refused(r).await;

        // Introspection and revocation authenticate the same way (the token endpoint URL or the endpoint's own as aud).
        let a = es.jws(json!({"kid": "k0"}), &good());
        let r = token_with(&app, &a).await;
        let token = r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let a = es.jws(
            json!({"kid": "k0"}),
            &claims(&app, &id, &app.url("/oauth2/introspect")),
        );
        let r = with_assertion(&app, "/oauth2/introspect", &a, None, &[("token", &token)]).await;
        let seen: Value = r.json().await.unwrap();
        assert_eq!(seen["active"], true, "{seen}");
        let a = es.jws(json!({"kid": "k0"}), &claims(&app, &id, &token_url));
        let r = with_assertion(&app, "/oauth2/revoke", &a, None, &[("token", &token)]).await;
        assert_eq!(r.status(), StatusCode::OK);

        // Rotation: add a second key, then remove the first.
        let next = TestKey::eddsa();
        let (status, body) = app
            .admin_call(
                reqwest::Method::PATCH,
                &format!("/clients/{id}"),
                Some(json!({"jwks": {"keys": [es.jwk("k0"), next.jwk("k-next")]}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for (key, kid) in [(es, "k0"), (&next, "k-next")] {
            let r = token_with(&app, &key.jws(json!({"kid": kid}), &good())).await;
            assert_eq!(r.status(), StatusCode::OK, "{kid} during the overlap");
        }
        let (status, _) = app
            .admin_call(
                reqwest::Method::PATCH,
                &format!("/clients/{id}"),
                Some(json!({"jwks": {"keys": [next.jwk("k-next")]}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        refused(token_with(&app, &es.jws(json!({"kid": "k0"}), &good())).await).await;
        assert_eq!(
            token_with(&app, &next.jws(json!({"kid": "k-next"}), &good()))
                .await
                .status(),
            StatusCode::OK
        );

        // A disabled client's assertions are refused.
        app.admin_call(
            reqwest::Method::PATCH,
            &format!("/clients/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
        refused(token_with(&app, &next.jws(json!({"kid": "k-next"}), &good())).await).await;
    }
);

both_engines!(
    key_registrations_are_checked_and_shown_as_rfc_7591_names,
    |app| {
        app.resource(API, &["read"]).await;
        let create = |extra: Value| {
            let mut spec = json!({"name": "k", "resources": [API]});
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            app.admin_call(reqwest::Method::POST, "/clients", Some(spec))
        };
        let key = TestKey::es256();
        let mut private = key.jwk("a");
        private["d"] = json!("c2VjcmV0");
        // A 1024-bit modulus padded with zero bytes to 2048 bits' length: never a 2048-bit key.
        let padded = json!({"kty": "RSA", "kid": "p", "alg": "RS256", "e": "AQAB",
                            "n": base64_url(&[vec![0u8; 128], vec![0xC5u8; 128]].concat())});
        let cases = [
            (json!({"jwks": {"keys": [padded]}}), "jwks"),
            (
                json!({"token_endpoint_auth_method": "private_key_jwt"}),
                "token_endpoint_auth_method",
            ),
            (json!({"jwks": {"keys": [private]}}), "jwks"),
            (
                json!({"jwks": {"keys": [key.jwk("a"), key.jwk("a")]}}),
                "jwks",
            ),
            (
                json!({"jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "s"}]}}),
                "jwks",
            ),
            (json!({"jwks_uri": "http://app.example/jwks"}), "jwks_uri"),
            (
                json!({"jwks": {"keys": [key.jwk("a")]}, "jwks_uri": "https://app.example/jwks"}),
                "jwks",
            ),
            (
                json!({"token_endpoint_auth_method": "tls_client_auth"}),
                "token_endpoint_auth_method",
            ),
            (
                json!({"token_endpoint_auth_method": "none", "auth_methods": ["none"]}),
                "token_endpoint_auth_method",
            ),
            (
                json!({"federated_credentials": [{"name": "gh", "issuer": "https://token.actions.githubusercontent.com",
                                              "audience": "kw"}]}),
                "federated_credentials",
            ),
        ];
        for (extra, field) in cases {
            let (status, body) = create(extra.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {body}");
            let message = body["error_description"]
                .as_str()
                .or(body["message"].as_str())
                .unwrap_or("");
            assert!(
                body.to_string().contains(field),
                "{extra}: {body} ({message})"
            );
        }
        // A key without `alg` gets the one its type implies; the view names everything as RFC 7591 does.
        let mut bare = key.jwk("a");
        bare.as_object_mut().unwrap().remove("alg");
        let (status, body) = create(json!({"token_endpoint_auth_method": "private_key_jwt",
                                       "jwks": {"keys": [bare]}, "dpop_bound_access_tokens": true}))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["jwks"]["keys"][0]["alg"], "ES256");
        assert_eq!(body["auth_methods"], json!(["private_key_jwt"]));
        assert_eq!(body["dpop_bound_access_tokens"], true);
        let id = body["client_id"].as_str().unwrap();
        let (_, read) = app
            .admin_call(reqwest::Method::GET, &format!("/clients/{id}"), None)
            .await;
        assert_eq!(read["jwks"], body["jwks"]);
        assert_eq!(read["token_endpoint_auth_method"], "private_key_jwt");
        // Secrets stay the default, and a secret client shows its first method.
        let (_, secret_client) = create(json!({"name": "s"})).await;
        assert_eq!(
            secret_client["token_endpoint_auth_method"],
            "client_secret_basic"
        );
        assert!(secret_client["client_secret"].is_string());
    }
);

/// A client whose keys are at a `jwks_uri` served over HTTPS with a CA Keyward trusts through `extra_ca_file`:
/// fetched once, cached, fetched again for a new `kid` (at most once per interval), never over plain HTTP.
async fn jwks_uri_keys_are_fetched_and_cached(engine: Engine) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let ca = TestCa::new();
    let first = TestKey::es256();
    let published = Arc::new(Mutex::new(json!({"keys": [first.jwk("one")]})));
    let fetches = Arc::new(AtomicUsize::new(0));
    let router = {
        let (published, fetches) = (published.clone(), fetches.clone());
        axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (published, fetches) = (published.clone(), fetches.clone());
                async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    axum::Json(published.lock().unwrap().clone())
                }
            }),
        )
    };
    let base = ca.serve(router).await;
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
            Some(json!({"name": "remote", "resources": [API], "token_endpoint_auth_method": "private_key_jwt",
                        "jwks_uri": format!("{base}/jwks.json")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["client_id"].as_str().unwrap().to_owned();
    let token_url = app.url("/oauth2/token");
    for _ in 0..3 {
        let a = first.jws(json!({"kid": "one"}), &claims(&app, &id, &token_url));
        assert_eq!(token_with(&app, &a).await.status(), StatusCode::OK);
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "cached after the first fetch"
    );
    // A forged kid flood costs at most one fetch per interval (and, past a few, the failed-authentication limit
    // stops it before any key is looked at).
    for i in 0..5 {
        let a = first.jws(
            json!({"kid": format!("forged-{i}")}),
            &claims(&app, &id, &token_url),
        );
        refused(token_with(&app, &a).await).await;
    }
    assert!(fetches.load(Ordering::SeqCst) <= 2, "{fetches:?}");
    // A key published later is found once the refetch interval allows (unknown kid → refetch).
    let second = TestKey::rs256();
    published
        .lock()
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert("keys".into(), json!([first.jwk("one"), second.jwk("two")]));
    tokio::time::sleep(keyward::remote_keys::MIN_REFETCH).await;
    let a = second.jws(json!({"kid": "two"}), &claims(&app, &id, &token_url));
    assert_eq!(token_with(&app, &a).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_uri_keys_sqlite() {
    jwks_uri_keys_are_fetched_and_cached(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_uri_keys_postgres() {
    jwks_uri_keys_are_fetched_and_cached(Engine::Postgres).await;
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
