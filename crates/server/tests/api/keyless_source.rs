//! The integrator's keyless side against the real server (issue 22, item 4): `TokenSource` signing
//! `private_key_jwt` assertions from a PEM key file (ES256, EdDSA, PS256) and getting DPoP-bound tokens, and
//! `keyward agent` doing both for an app in token mode and in proxy mode (clients registered with
//! `token_endpoint_auth_method: private_key_jwt` and a `jwks`; `token_type: DPoP` with `cnf.jkt` for a request
//! with a proof); what the client sends is checked without a server in keyward-client's own tests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use bytes::Bytes;
use http_body_util::Full;
use keyward_client::source::Credential;
use keyward_client::{AttachTokenLayer, PublicKey, SigningKey, TokenError, TokenSource};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt};

use crate::harness::{TestApp, claims};

const API: &str = "https://api.example.com";

/// A PEM PKCS#8 file of a fresh key of `kind` (`ec`, `ed`, `rsa`) in `dir`.
fn key_file(dir: &Path, kind: &str) -> PathBuf {
    let der = match kind {
        "ec" => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap()
                .as_ref()
                .to_vec()
        }
        "ed" => Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec(),
        _ => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair)
                .unwrap()
                .as_ref()
                .to_vec()
        }
    };
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let path = dir.join(format!("{kind}.pem"));
    std::fs::write(
        &path,
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        ),
    )
    .unwrap();
    path
}

/// A client of [`API`] that authenticates with `private_key_jwt` and the public half of `key` as `kid`; its id.
pub async fn key_client(app: &TestApp, key: &SigningKey, kid: &str) -> String {
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/clients",
            Some(json!({
                "name": format!("keyed {kid}"),
                "resources": [API],
                "scopes": ["read"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [key.public_jwk_for(kid)]},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body.get("client_secret").is_none_or(Value::is_null),
        "no secret for a key client: {body}"
    );
    body["client_id"].as_str().unwrap().to_owned()
}

/// `TokenSource` signs a fresh assertion per token request from a PEM key file, for each key type Keyward
/// accepts; a `kid` the client does not have is `invalid_client`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_source_authenticates_with_a_private_key_file() {
    let app = TestApp::sqlite().await;
    app.resource(API, &["read", "write"]).await;
    let dir = tempfile::tempdir().unwrap();
    for kind in ["ec", "ed", "rsa"] {
        let path = key_file(dir.path(), kind);
        let key = SigningKey::from_pem_file(&path, None).unwrap();
        let id = key_client(&app, &key, &format!("{kind}-1")).await;
        let source = TokenSource::with_credential(
            app.url("/oauth2/token"),
            &id,
            Credential::private_key_file(&path, format!("{kind}-1"), None).unwrap(),
        )
        .audience(API)
        .build()
        .unwrap();
        let token = source
            .token()
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(token.token_type(), "Bearer");
        let c = app.verify_jwt(token.secret(), API).await;
        assert_eq!(c["client_id"], id.as_str(), "{kind}");
        // A second request signs a second assertion (its own jti): the server spends each once.
        source.reject(&token);
        let next = source.token().await.unwrap();
        assert_ne!(next.secret(), token.secret());
        assert_eq!(source.status().fetched, 2, "{kind}");

        let unknown = TokenSource::with_credential(
            app.url("/oauth2/token"),
            &id,
            Credential::PrivateKey {
                key: key.clone(),
                key_id: "not-registered".into(),
            },
        )
        .audience(API)
        .build()
        .unwrap();
        let e = unknown.token().await.unwrap_err();
        assert!(
            matches!(&e, TokenError::Refused { status: 401, error, .. } if error == "invalid_client"),
            "{kind}: {e:?}"
        );
    }
}

/// What the DPoP API saw, and the nonce it asks for (if any).
#[derive(Clone, Default)]
struct DpopApi {
    calls: Arc<Mutex<Vec<Value>>>,
    nonce: Option<&'static str>,
}

/// An API of the test's own that takes DPoP-bound tokens: it checks the proof's signature with the key the proof
/// carries, that the key is the one the token is bound to (`cnf.jkt`), the method, URL and `ath`, and counts.
async fn dpop_api(
    State(api): State<DpopApi>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let headers: &HeaderMap = req.headers();
    let token = headers["authorization"]
        .to_str()
        .unwrap()
        .strip_prefix("DPoP ")
        .expect("Authorization: DPoP")
        .to_owned();
    let proof = headers["dpop"].to_str().unwrap();
    let part = |i: usize| -> Value {
        serde_json::from_slice(&B64.decode(proof.split('.').nth(i).unwrap()).unwrap()).unwrap()
    };
    let (header, proof_claims) = (part(0), part(1));
    assert_eq!(header["typ"], "dpop+jwt");
    let mut jwk = header["jwk"].clone();
    assert!(jwk.get("d").is_none(), "public only");
    jwk["kid"] = json!("p");
    jwk["alg"] = header["alg"].clone();
    let (input, sig) = proof.rsplit_once('.').unwrap();
    assert!(
        PublicKey::from_jwk(&jwk)
            .unwrap()
            .verify(input.as_bytes(), &B64.decode(sig).unwrap())
    );
    let ath = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    assert_eq!(proof_claims["ath"], B64.encode(ath));
    assert_eq!(proof_claims["htm"], req.method().as_str());
    if let Some(nonce) = api.nonce {
        if proof_claims["nonce"] != nonce {
            return (
                StatusCode::UNAUTHORIZED,
                [
                    ("www-authenticate", "DPoP error=\"use_dpop_nonce\""),
                    ("dpop-nonce", nonce),
                ],
            )
                .into_response();
        }
    }
    let record = json!({
        "htu": proof_claims["htu"],
        "jwk": header["jwk"],
        "cnf": claims(&token)["cnf"],
        "path": req.uri().path(),
    });
    api.calls.lock().unwrap().push(record);
    "ok".into_response()
}

/// The RFC 7638 thumbprint of a public JWK of P-256.
fn jkt(jwk: &Value) -> String {
    let canonical = format!(
        r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str().unwrap(),
        jwk["kty"].as_str().unwrap(),
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// A source with `.dpop()` gets a token bound to its key (`token_type: DPoP`, `cnf.jkt` its thumbprint), and
/// `AttachTokenLayer` sends it to an API as `Authorization: DPoP` with a proof per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_source_gets_dpop_bound_tokens_and_proves_each_call() {
    let app = TestApp::sqlite().await;
    let (id, secret) = app.api_client().await;
    let key = SigningKey::generate_es256().unwrap();
    let source = TokenSource::builder(
        app.url("/oauth2/token"),
        &id,
        keyward_client::Secret::new(&secret),
    )
    .audience(API)
    .dpop_key(key.clone())
    .build()
    .unwrap();
    let token = source.token().await.unwrap();
    assert_eq!(token.token_type(), "DPoP", "the server binds the token");
    let c = app.verify_jwt(token.secret(), API).await;
    assert_eq!(c["cnf"]["jkt"], key.thumbprint());
    assert_eq!(source.dpop_jwk(), Some(key.public_jwk()));

    let api = DpopApi::default();
    let upstream = crate::verify::serve(
        axum::Router::new()
            .fallback(dpop_api)
            .with_state(api.clone()),
    )
    .await;
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut client = AttachTokenLayer::new(source.clone()).unwrap().layer(http);
    for path in ["/orders/1", "/orders/2?x=y"] {
        let request = axum::http::Request::get(format!("{upstream}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = client.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let calls = api.calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    for call in calls.iter() {
        assert_eq!(
            call["cnf"]["jkt"],
            jkt(&call["jwk"]),
            "the proof's key is the token's"
        );
    }
    assert_eq!(calls[1]["htu"], format!("{upstream}/orders/2"));
}

/// `keyward agent`: one API whose client authenticates with a private key file, one whose tokens are DPoP-bound.
/// Token mode gives each token with its `token_type` (and a proof for a named call); proxy mode adds a fresh proof
/// to each proxied call for its method and upstream URL, so the app never handles a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_uses_a_private_key_and_dpop_for_the_app() {
    let app = TestApp::sqlite().await;
    let (id, secret) = app.api_client().await;
    let dir = tempfile::tempdir().unwrap();
    let path = key_file(dir.path(), "ec");
    let key = SigningKey::from_pem_file(&path, None).unwrap();
    let keyed = key_client(&app, &key, "agent-1").await;
    let api = DpopApi::default();
    let upstream = crate::verify::serve(
        axum::Router::new()
            .fallback(dpop_api)
            .with_state(api.clone()),
    )
    .await;
    let token_url = app.url("/oauth2/token");
    let config = format!(
        "[api.keyed]\ntoken_url = \"{token_url}\"\naudience = \"{API}\"\nclient_id = \"{keyed}\"\n\
         private_key_file = \"{}\"\nkey_id = \"agent-1\"\n\
         [api.bound]\ntoken_url = \"{token_url}\"\naudience = \"{API}\"\nclient_id = \"{id}\"\n\
         client_secret = \"{secret}\"\ndpop = true\napi_url = \"{upstream}/v2\"\n",
        path.display()
    );
    let agent = crate::agent::agent(dir.path(), &config, &[]);
    let http = crate::agent::http();

    let r = http.get(agent.url("/v1/token/keyed")).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer", "{body}");
    let c = app
        .verify_jwt(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(c["client_id"], keyed.as_str());

    let r = http
        .get(agent.url("/v1/token/bound"))
        .query(&[("htm", "GET"), ("htu", &format!("{upstream}/v2/x"))])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let token = body["access_token"].as_str().unwrap();
    let proof = body["dpop"].as_str().expect("a proof for the named call");
    let proof_claims: Value =
        serde_json::from_slice(&B64.decode(proof.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(proof_claims["htu"], format!("{upstream}/v2/x"));
    let ath = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    assert_eq!(proof_claims["ath"], B64.encode(ath));

    // Proxy mode: the app sends a plain request; the API gets the token and a proof for its own URL.
    for _ in 0..2 {
        let r = http
            .delete(agent.url("/bound/orders/9?soft=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let calls = api.calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["htu"], format!("{upstream}/v2/orders/9"));
    assert_eq!(calls[0]["path"], "/v2/orders/9");
    assert_eq!(calls[0]["cnf"]["jkt"], jkt(&calls[0]["jwk"]));
}

/// Proxy mode with a DPoP-bound token: each proxied call carries a fresh proof for its method and upstream URL;
/// an API that asks for its nonce gets the request once more when the body was kept, and the nonce is kept for
/// the calls after; a streamed body is not sent twice (the app gets the 401, its next call carries the nonce).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_proxy_proves_each_call_and_answers_nonce_challenges() {
    // Keyward asks for its own nonce first (dpop_nonce_interval), as the API does for its own.
    let app = TestApp::with_env(
        crate::harness::Engine::Sqlite,
        &[("KEYWARD_DPOP_NONCE_INTERVAL", "60s")],
    )
    .await;
    let (id, secret) = app.api_client().await;
    let token_url = app.url("/oauth2/token");
    let api = DpopApi {
        nonce: Some("rs-nonce"),
        ..DpopApi::default()
    };
    let upstream = crate::verify::serve(
        axum::Router::new()
            .fallback(dpop_api)
            .with_state(api.clone()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[api.bound]\ntoken_url = \"{token_url}\"\nclient_id = \"{id}\"\nclient_secret = \"{secret}\"\n\
         dpop = true\napi_url = \"{upstream}\"\n[api.other]\ntoken_url = \"{token_url}\"\nclient_id = \"{id}\"\n\
         client_secret = \"{secret}\"\ndpop = true\napi_url = \"{upstream}\"\n"
    );
    let agent = crate::agent::agent(dir.path(), &config, &[]);
    let http = crate::agent::http();
    let r = http.get(agent.url("/v1/token/bound")).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    assert!(
        body.get("dpop").is_none(),
        "no proof unless a call is named"
    );

    // The first call meets the API's nonce challenge; its empty GET body was kept, so the agent sends it again.
    let r = http.get(agent.url("/bound/a")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(api.calls.lock().unwrap().len(), 1);
    // The nonce is kept: a POST passes at the first try.
    let r = http
        .post(agent.url("/bound/b"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    {
        let calls = api.calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1]["htu"], format!("{upstream}/b"));
        assert_eq!(calls[1]["cnf"]["jkt"], jkt(&calls[1]["jwk"]));
    }
    // Another API (its own source and key, no nonce yet): a POST is never sent twice, so the app gets the 401;
    // the nonce is kept, and the app's next call passes.
    let r = http
        .post(agent.url("/other/c"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.calls.lock().unwrap().len(), 2);
    let r = http
        .post(agent.url("/other/c"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(api.calls.lock().unwrap().len(), 3);

    // Token mode refuses half a call.
    let r = http
        .get(agent.url("/v1/token/bound?htm=GET"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
