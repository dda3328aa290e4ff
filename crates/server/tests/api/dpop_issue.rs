//! DPoP at Keyward's token endpoint (RFC 9449 §5): a request with a good proof gets `token_type` `DPoP` and a token
//! bound by `cnf.jkt` (shown by introspection, accepted by keyward-client's verifier only with a proof by the same
//! key); every wrong proof is 400 `invalid_dpop_proof`; a client may require DPoP; a public client's refresh token
//! is bound to the key that redeemed its code; server nonces (`dpop_nonce_interval`) are asked for with
//! `use_dpop_nonce` and handed out in `DPoP-Nonce`.

use axum::http::{HeaderMap, Method, Uri};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::{Engine, TestApp, claims};
use crate::jws::TestKey;
use crate::oauth_agent::*;

const RESOURCE: &str = "https://api.example.com";

/// A DPoP proof by `key` for `method` `url` at `iat`, with `extra` claims (and `ath`/`nonce` among them).
pub fn proof(key: &TestKey, method: &str, url: &str, iat: i64, extra: Value) -> String {
    let mut c =
        json!({"jti": keyward::crypto::random_id("p_"), "htm": method, "htu": url, "iat": iat});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    key.jws(json!({"typ": "dpop+jwt", "jwk": key.bare_jwk()}), &c)
}

/// A client_credentials request with Basic and these `DPoP` headers.
async fn token_with_proofs(
    app: &TestApp,
    id: &str,
    secret: &str,
    proofs: &[&str],
) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")]);
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    req.send().await.unwrap()
}

async fn dpop_error(r: reqwest::Response, code: &str) {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], code, "{body}");
}

both_engines!(dpop_proofs_bind_tokens_and_bad_proofs_are_refused, |app| {
    let (id, secret) = app.api_client().await;
    let url = app.url("/oauth2/token");
    let key = TestKey::es256();
    let now = app.clock.now();
    let meta: Value = app
        .get_json(&app.url("/.well-known/oauth-authorization-server"))
        .await;
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        json!(["ES256", "PS256", "RS256", "EdDSA"])
    );

    let good = proof(&key, "POST", &url, now, json!({}));
    let r = token_with_proofs(&app, &id, &secret, &[&good]).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let jkt = keyward_client::dpop::thumbprint(&key.bare_jwk()).unwrap();
    assert_eq!(claims(&token)["cnf"], json!({"jkt": jkt}));

    // Introspection shows the binding (RFC 9449 §6.2).
    let r = app
        .post_form(
            "/oauth2/introspect",
            Some((&id, &secret)),
            &[("token", &token)],
        )
        .await;
    let seen: Value = r.json().await.unwrap();
    assert_eq!(
        (&seen["token_type"], &seen["cnf"]),
        (&json!("DPoP"), &json!({"jkt": jkt}))
    );

    // keyward-client's verifier takes the bound token only with a proof by the same key for the request.
    let verifier = keyward_client::Verifier::builder(app.base.clone())
        .audience(RESOURCE)
        .public_origin("https://api.example.com")
        .build()
        .unwrap();
    let layer = verifier.layer();
    let api = "https://api.example.com/orders/1";
    let call = |proof: String, scheme: &str| {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            format!("{scheme} {token}").parse().unwrap(),
        );
        h.insert("dpop", proof.parse().unwrap());
        h
    };
    let ath = keyward_client::dpop::ath(&token);
    let uri: Uri = "/orders/1".parse().unwrap();
    let ok = call(
        proof(&key, "GET", api, app.clock.now(), json!({"ath": ath})),
        "DPoP",
    );
    assert!(layer.check_request(&Method::GET, &uri, &ok).await.is_ok());
    let other_key = call(
        proof(
            &TestKey::es256(),
            "GET",
            api,
            app.clock.now(),
            json!({"ath": ath}),
        ),
        "DPoP",
    );
    assert!(
        layer
            .check_request(&Method::GET, &uri, &other_key)
            .await
            .is_err()
    );
    let as_bearer = call(
        proof(&key, "GET", api, app.clock.now(), json!({"ath": ath})),
        "Bearer",
    );
    assert!(
        layer
            .check_request(&Method::GET, &uri, &as_bearer)
            .await
            .is_err()
    );

    // Every wrong proof: 400 invalid_dpop_proof, no token.
    let private = {
        let mut jwk = key.bare_jwk();
        jwk["d"] = json!("AAAA");
        key.jws(
            json!({"typ": "dpop+jwt", "jwk": jwk}),
            &json!({"jti": "x1", "htm": "POST", "htu": url, "iat": now}),
        )
    };
    let cases = [
        ("replayed", good.clone()),
        (
            "other URL",
            proof(&key, "POST", &app.url("/oauth2/revoke"), now, json!({})),
        ),
        ("other method", proof(&key, "GET", &url, now, json!({}))),
        ("old", proof(&key, "POST", &url, now - 600, json!({}))),
        ("ahead", proof(&key, "POST", &url, now + 600, json!({}))),
        ("private key in jwk", private),
        (
            "typ of a JWT",
            key.jws(
                json!({"typ": "JWT", "jwk": key.bare_jwk()}),
                &json!({"jti": "x2", "htm": "POST", "htu": url, "iat": now}),
            ),
        ),
        (
            "HS256",
            crate::jws::hs256(
                b"k",
                &json!({"jti": "x3", "htm": "POST", "htu": url, "iat": now}),
            ),
        ),
        ("not a JWT", "nope".to_owned()),
    ];
    for (why, p) in cases {
        let r = token_with_proofs(&app, &id, &secret, &[&p]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{why}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_dpop_proof", "{why}: {body}");
    }
    let (a, b) = (
        proof(&key, "POST", &url, now, json!({})),
        proof(&key, "POST", &url, now, json!({})),
    );
    dpop_error(
        token_with_proofs(&app, &id, &secret, &[&a, &b]).await,
        "invalid_dpop_proof",
    )
    .await;
    // Without a proof the same client still gets a Bearer token.
    let r = token_with_proofs(&app, &id, &secret, &[]).await;
    assert_eq!(r.json::<Value>().await.unwrap()["token_type"], "Bearer");

    // A client may require DPoP (RFC 9449 §5.2).
    let (status, body) = app
        .admin_call(
            reqwest::Method::PATCH,
            &format!("/clients/{id}"),
            Some(json!({"dpop_bound_access_tokens": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    dpop_error(
        token_with_proofs(&app, &id, &secret, &[]).await,
        "invalid_dpop_proof",
    )
    .await;
    let p = proof(&key, "POST", &url, app.clock.now(), json!({}));
    let r = token_with_proofs(&app, &id, &secret, &[&p]).await;
    assert_eq!(r.json::<Value>().await.unwrap()["token_type"], "DPoP");
});

both_engines!(
    a_public_clients_refresh_token_is_bound_to_its_dpop_key,
    |app| {
        let _f = fixture(&app).await;
        let mut spec = app_spec("Phone app", &[REDIRECT]);
        spec["client_type"] = json!("public");
        let (status, body) = app
            .admin_call(reqwest::Method::POST, "/clients", Some(spec))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["client_id"].as_str().unwrap().to_owned();
        let agent = Agent::new(&app);
        let p = pkce();
        let params = request(&id, &p.challenge, "s");
        let html = consent_page(agent.authorize(&params, EMAIL).await).await;
        let to = location(&agent.decide(&html, "allow").await);
        let code = code_of(&app, &to, &params);
        let url = app.url("/oauth2/token");
        let key = TestKey::eddsa();
        let post = |form: Vec<(&'static str, String)>, proof: Option<String>| {
            let mut req = app.http.post(&url).form(&form);
            if let Some(p) = proof {
                req = req.header("DPoP", p);
            }
            req.send()
        };
        let r = post(
            vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("redirect_uri", REDIRECT.into()),
                ("code_verifier", p.verifier.clone()),
                ("client_id", id.clone()),
            ],
            Some(proof(&key, "POST", &url, app.clock.now(), json!({}))),
        )
        .await
        .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["token_type"], "DPoP", "{body}");
        let refresh = body["refresh_token"].as_str().unwrap().to_owned();
        let form = |token: &str| {
            vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", token.to_owned()),
                ("client_id", id.clone()),
            ]
        };
        // Without a proof, or with another key's: refused, and the refresh token stays unspent.
        dpop_error(
            post(form(&refresh), None).await.unwrap(),
            "invalid_dpop_proof",
        )
        .await;
        let stranger = proof(&TestKey::eddsa(), "POST", &url, app.clock.now(), json!({}));
        dpop_error(
            post(form(&refresh), Some(stranger)).await.unwrap(),
            "invalid_dpop_proof",
        )
        .await;
        let r = post(
            form(&refresh),
            Some(proof(&key, "POST", &url, app.clock.now(), json!({}))),
        )
        .await
        .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["token_type"], "DPoP", "{body}");
        assert!(body["refresh_token"].is_string());
    }
);

/// With `dpop_nonce_interval`, a proof without the server's nonce is answered `use_dpop_nonce` with the nonce in
/// `DPoP-Nonce` (RFC 9449 §8); the retry with it succeeds; a made-up nonce is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_nonces_are_asked_for_and_accepted() {
    let app = TestApp::with_env(Engine::Sqlite, &[("KEYWARD_DPOP_NONCE_INTERVAL", "60s")]).await;
    let (id, secret) = app.api_client().await;
    let url = app.url("/oauth2/token");
    let key = TestKey::ps256();
    let r = token_with_proofs(
        &app,
        &id,
        &secret,
        &[&proof(&key, "POST", &url, app.clock.now(), json!({}))],
    )
    .await;
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    dpop_error(r, "use_dpop_nonce").await;
    let made_up = proof(
        &key,
        "POST",
        &url,
        app.clock.now(),
        json!({"nonce": "1.AAAA"}),
    );
    dpop_error(
        token_with_proofs(&app, &id, &secret, &[&made_up]).await,
        "use_dpop_nonce",
    )
    .await;
    let with_nonce = proof(&key, "POST", &url, app.clock.now(), json!({"nonce": nonce}));
    let r = token_with_proofs(&app, &id, &secret, &[&with_nonce]).await;
    assert!(r.headers().contains_key("dpop-nonce"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
}

both_engines!(a_resource_may_take_dpop_bound_tokens_only, |app| {
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/resources",
            Some(
                json!({"identifier": "https://bound.example", "name": "Bound", "scopes": ["read"],
                        "require_dpop": true}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["require_dpop"], true);
    let (id, secret) = app
        .client(json!({"name": "c", "resources": ["https://bound.example"], "scopes": ["read"]}))
        .await;
    dpop_error(
        token_with_proofs(&app, &id, &secret, &[]).await,
        "invalid_dpop_proof",
    )
    .await;
    let key = TestKey::es256();
    let p = proof(
        &key,
        "POST",
        &app.url("/oauth2/token"),
        app.clock.now(),
        json!({}),
    );
    let r = token_with_proofs(&app, &id, &secret, &[&p]).await;
    assert_eq!(r.json::<Value>().await.unwrap()["token_type"], "DPoP");
    // Turned off again, a Bearer token is fine.
    let (status, _) = app
        .admin_call(
            reqwest::Method::PATCH,
            "/resources/https%3A%2F%2Fbound.example",
            Some(json!({"require_dpop": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = token_with_proofs(&app, &id, &secret, &[]).await;
    assert_eq!(r.json::<Value>().await.unwrap()["token_type"], "Bearer");
});
