//! The keyless token source end to end against a token endpoint and an API of the test's own (on 127.0.0.1:0):
//! what goes over the wire for `private_key_jwt`, GitHub Actions federation and DPoP, checked the way a server
//! checks it (`keyward_core::assertion::check`, the key's signature), nonces asked for and given. The real
//! Keyward server's side is in `crates/server/tests/api/keyless_source.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http_body_util::Full;
use keyward_client::{AttachTokenLayer, PublicKey, Secret, SigningKey, TokenSource};
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt};

/// What the test's servers saw: each token request's form, each API call's headers.
#[derive(Default)]
struct Seen {
    forms: Vec<Vec<(String, String)>>,
    proofs: Vec<Value>,
    api_calls: usize,
    /// The public key the token endpoint trusts, and the base URL.
    key: Option<PublicKey>,
    base: String,
}

type Shared = Arc<Mutex<Seen>>;

fn part(jwt: &str, i: usize) -> Value {
    serde_json::from_slice(&B64.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

fn decode_form(body: &[u8]) -> Vec<(String, String)> {
    let params = keyward_core::form::Params::parse(body).unwrap();
    [
        "grant_type",
        "client_id",
        "client_assertion_type",
        "client_assertion",
        "client_secret",
    ]
    .iter()
    .filter_map(|k| Some(((*k).to_owned(), params.single(k).unwrap()?.to_owned())))
    .collect()
}

/// The token endpoint: checks the assertion as Keyward would, asks for a DPoP nonce once, issues a DPoP token.
async fn token(State(seen): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    assert!(
        headers.get("authorization").is_none(),
        "no Basic with an assertion"
    );
    let form = decode_form(&body);
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut s = seen.lock().unwrap();
    s.forms.push(form.clone());
    let url = format!("{}/token", s.base);
    assert_eq!(
        get("client_assertion_type").as_deref(),
        Some(keyward_core::assertion::CLIENT_ASSERTION_TYPE)
    );
    assert_eq!(get("client_id").as_deref(), Some("client-1"));
    let assertion = get("client_assertion").unwrap();
    if let Some(key) = &s.key {
        let checked =
            keyward_core::assertion::check(&assertion, "client-1", &[&url], now()).unwrap();
        assert!(key.verify(checked.signing_input.as_bytes(), &checked.signature));
    } else {
        assert_eq!(assertion, "gh.platform.token", "the platform's own token");
    }
    let proof = headers["dpop"].to_str().unwrap().to_owned();
    let claims = part(&proof, 1);
    assert_eq!(
        (claims["htm"].as_str(), claims["htu"].as_str()),
        (Some("POST"), Some(url.as_str()))
    );
    s.proofs.push(claims.clone());
    if claims.get("nonce").is_none() {
        return (
            StatusCode::BAD_REQUEST,
            [("dpop-nonce", "as-1")],
            axum::Json(json!({"error": "use_dpop_nonce"})),
        )
            .into_response();
    }
    assert_eq!(claims["nonce"], "as-1");
    (
        [("dpop-nonce", "as-2")],
        axum::Json(json!({"access_token": "the-token", "token_type": "DPoP", "expires_in": 3600})),
    )
        .into_response()
}

/// GitHub Actions' OIDC endpoint: the request token as a bearer, the audience in the query.
async fn github(headers: HeaderMap, req: Request) -> Response {
    assert_eq!(headers["authorization"], "Bearer gh-request-token");
    assert_eq!(
        req.uri().query(),
        Some("api-version=2.0&audience=api%3A%2F%2Fkeyward")
    );
    axum::Json(json!({"value": "gh.platform.token"})).into_response()
}

/// The API: asks for its nonce once, then checks the proof's method, URL, nonce and `ath`.
async fn api(State(seen): State<Shared>, headers: HeaderMap, req: Request) -> Response {
    let mut s = seen.lock().unwrap();
    s.api_calls += 1;
    assert_eq!(headers["authorization"], "DPoP the-token");
    let claims = part(headers["dpop"].to_str().unwrap(), 1);
    assert_eq!(claims["htm"], req.method().as_str());
    assert_eq!(claims["htu"], format!("{}/orders/7", s.base));
    let ath = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"the-token");
    assert_eq!(claims["ath"], B64.encode(ath));
    if claims.get("nonce").is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            [
                ("www-authenticate", "DPoP error=\"use_dpop_nonce\""),
                ("dpop-nonce", "rs-1"),
            ],
        )
            .into_response();
    }
    assert_eq!(claims["nonce"], "rs-1");
    "ok".into_response()
}

#[allow(
    clippy::disallowed_methods,
    reason = "the assertion's iat is the client's wall clock; the test checks it"
)]
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn serve(key: Option<PublicKey>) -> (String, Shared) {
    let seen: Shared = Arc::default();
    let router = Router::new()
        .route("/token", axum::routing::post(token))
        .route("/gh", axum::routing::get(github))
        .route("/orders/7", axum::routing::any(api))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    {
        let mut s = seen.lock().unwrap();
        s.key = key;
        s.base = base.clone();
    }
    (base, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_with_dpop_nonces_end_to_end() {
    let key = SigningKey::generate_es256().unwrap();
    let public = PublicKey::from_jwk(&key.public_jwk_for("k1")).unwrap();
    let (base, seen) = serve(Some(public)).await;
    let source = TokenSource::builder(format!("{base}/token"), "client-1", Secret::new("unused"))
        .private_key(key, "k1")
        .dpop()
        .build()
        .unwrap();
    let token = source.token().await.unwrap();
    assert_eq!(token.token_type(), "DPoP");
    assert!(token.is_dpop());
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.forms.len(), 2, "one nonce retry");
        let jti = |i: usize| {
            s.forms[i]
                .iter()
                .find(|(k, _)| k == "client_assertion")
                .unwrap()
                .1
                .clone()
        };
        assert_ne!(
            part(&jti(0), 1)["jti"],
            part(&jti(1), 1)["jti"],
            "a fresh assertion per try"
        );
        assert_ne!(s.proofs[0]["jti"], s.proofs[1]["jti"]);
    }
    let jwk = source.dpop_jwk().unwrap();
    assert!(jwk.get("d").is_none());

    // The API asks for its own nonce; the layer resends once with a proof carrying it, the same token.
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut client = AttachTokenLayer::new(source.clone()).unwrap().layer(http);
    let request = axum::http::Request::get(format!("{base}/orders/7?x=1"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = client
        .ready()
        .await
        .unwrap()
        .call(request.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(seen.lock().unwrap().api_calls, 2);
    // The nonce is remembered: the next call needs one try.
    let r = client.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(seen.lock().unwrap().api_calls, 3);
    assert_eq!(source.status().fetched, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_actions_token_is_sent_as_the_assertion() {
    let (base, seen) = serve(None).await;
    let source = TokenSource::builder(format!("{base}/token"), "client-1", Secret::new("unused"))
        .github_actions(
            format!("{base}/gh?api-version=2.0"),
            Secret::new("gh-request-token"),
            "api://keyward",
        )
        .dpop()
        .build()
        .unwrap();
    let token = source.token().await.unwrap();
    assert_eq!(token.token_type(), "DPoP");
    assert_eq!(seen.lock().unwrap().forms.len(), 2);
}
