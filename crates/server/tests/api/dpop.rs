//! DPoP-bound tokens (RFC 9449 §7) at keyward-client's verifier (in examples/orders-api) and at `keyward
//! gateway`. Keyward does not issue bound tokens here: a test issuer of its own (an ES256 key, discovery and a
//! JWKS on 127.0.0.1:0) signs tokens carrying `cnf.jkt` with jsonwebtoken, which also signs the proofs, each with
//! the client's public key in its `jwk` header. Each way a proof or its use can be wrong gets the RFC 9449 §7.1
//! answer.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keyward::clock::Clock;
use keyward::gateway::{Gateway, config};
use keyward_client::Verifier;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::verify::UAT;

const ALGS: &str = r#"algs="ES256 PS256 RS256 EdDSA""#;

/// An ES256 key: jsonwebtoken's signing key and the public JWK.
struct Key {
    signing: EncodingKey,
    jwk: Value,
}

fn es256() -> Key {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    Key {
        signing: EncodingKey::from_ec_der(pair.to_pkcs8v1().unwrap().as_ref()),
        jwk: json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])}),
    }
}

/// RFC 7638 computed here, apart from keyward-client: SHA-256 of the required members in order.
fn jkt(key: &Key) -> String {
    let j = &key.jwk;
    let input = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        j["x"].as_str().unwrap(),
        j["y"].as_str().unwrap()
    );
    B64.encode(keyward::crypto::sha256(input.as_bytes()))
}

/// Binds 127.0.0.1:0; returns the listener and its base URL.
async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// A token issuer of the test's own: discovery and a JWKS with one ES256 key.
struct Issuer {
    base: String,
    key: Key,
}

async fn issuer() -> Issuer {
    let (listener, base) = bind().await;
    let key = es256();
    let mut public = key.jwk.clone();
    public["kid"] = json!("dpop-test");
    public["alg"] = json!("ES256");
    let discovery = json!({"issuer": base, "jwks_uri": format!("{base}/jwks")});
    let router = axum::Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            axum::routing::get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || async move { axum::Json(json!({"keys": [public]})) }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    Issuer { base, key }
}

impl Issuer {
    /// An access token for UAT, bound to `jkt` when given.
    fn token(&self, jkt: Option<&str>, scope: &str) -> String {
        let now = Clock::wall();
        let mut claims = json!({
            "iss": self.base, "sub": "client-1", "aud": UAT, "exp": now + 600, "iat": now,
            "jti": format!("at-{}", next()), "client_id": "client-1", "scope": scope,
        });
        if let Some(jkt) = jkt {
            claims["cnf"] = json!({ "jkt": jkt });
        }
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some("dpop-test".into());
        jsonwebtoken::encode(&header, &claims, &self.key.signing).unwrap()
    }
}

fn next() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A proof's claims for `method` and `url`, with `ath` for `token`, made now, with a fresh `jti`.
fn claims(method: &str, url: &str, token: Option<&str>) -> Value {
    let mut c =
        json!({"jti": format!("p-{}", next()), "htm": method, "htu": url, "iat": Clock::wall()});
    if let Some(t) = token {
        c["ath"] = json!(B64.encode(keyward::crypto::sha256(t.as_bytes())));
    }
    c
}

/// A proof signed by `key`, carrying `key`'s public JWK.
fn proof(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(serde_json::from_value(key.jwk.clone()).unwrap());
    jsonwebtoken::encode(&header, claims, &key.signing).unwrap()
}

async fn get(url: &str, authorization: &str, proofs: &[&str]) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .get(url)
        .header("authorization", authorization);
    for p in proofs {
        r = r.header("dpop", *p);
    }
    r.send().await.unwrap()
}

/// Checks an RFC 9449 §7.1 answer: status, a `DPoP` challenge with the error, its description and the algorithms
/// (and a `Bearer` one too when `bearer_too`), the JSON body. Returns every challenge.
async fn assert_dpop(
    r: reqwest::Response,
    status: StatusCode,
    error: &str,
    description: &str,
    bearer_too: bool,
) -> Vec<String> {
    assert_eq!(r.status(), status);
    let challenges: Vec<String> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let dpop = format!(r#"DPoP error="{error}", error_description="{description}", {ALGS}"#);
    assert!(challenges.contains(&dpop), "{challenges:?}");
    assert_eq!(
        challenges.iter().any(|c| c.starts_with("Bearer ")),
        bearer_too,
        "{challenges:?}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_description"], description, "{body}");
    challenges
}

/// Every refusal of a bound token's use at `url` (a route that needs `orders:read`), whoever serves it.
async fn refusals(issuer: &Issuer, client: &Key, url: &str) {
    let token = issuer.token(Some(&jkt(client)), "orders:read");
    let dpop = format!("DPoP {token}");
    let good = || proof(client, &claims("GET", url, Some(&token)));

    // A good proof passes; the same proof again is a replay.
    let once = good();
    assert_eq!(get(url, &dpop, &[&once]).await.status(), StatusCode::OK);
    let r = get(url, &dpop, &[&once]).await;
    assert_dpop(
        r,
        StatusCode::UNAUTHORIZED,
        "invalid_dpop_proof",
        "the proof was used before",
        false,
    )
    .await;
    // The token was verified and cached above: the proof is checked all the same, each time.
    assert_eq!(get(url, &dpop, &[&good()]).await.status(), StatusCode::OK);
    let r = get(url, &dpop, &[]).await;
    assert_dpop(
        r,
        StatusCode::UNAUTHORIZED,
        "invalid_dpop_proof",
        "the DPoP proof is missing",
        false,
    )
    .await;

    // A bound token as Bearer: refused with both challenges, whatever proof comes along.
    let r = get(url, &format!("Bearer {token}"), &[&good()]).await;
    let description = "the token is bound to a key: present it with the DPoP scheme and a proof";
    let all = assert_dpop(
        r,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        description,
        true,
    )
    .await;
    assert!(all.contains(&format!(
        r#"Bearer error="invalid_token", error_description="{description}""#
    )));

    // A proof for another URL, another method, signed by another key, for another token, or too old.
    let other_url = url.replace("/orders/1", "/orders/2");
    let cases: Vec<(String, &str)> = vec![
        (
            proof(client, &claims("GET", &other_url, Some(&token))),
            "htu does not match the request's URL",
        ),
        (
            proof(client, &claims("POST", url, Some(&token))),
            "htm does not match the request's method",
        ),
        (
            proof(&es256(), &claims("GET", url, Some(&token))),
            "the proof is signed by another key than the token is bound to",
        ),
        (proof(client, &claims("GET", url, None)), "ath is missing"),
        (
            proof(client, &claims("GET", url, Some("another token"))),
            "ath does not match the access token",
        ),
        (
            proof(client, &{
                let mut c = claims("GET", url, Some(&token));
                c["iat"] = json!(Clock::wall() - 120);
                c
            }),
            "the proof is too old (iat more than 60 s ago)",
        ),
        (
            proof(client, &claims("GET", url, Some(&token))).replace('.', "x"),
            "malformed DPoP proof: not a compact JWS",
        ),
    ];
    for (p, why) in cases {
        let r = get(url, &dpop, &[&p]).await;
        assert_dpop(
            r,
            StatusCode::UNAUTHORIZED,
            "invalid_dpop_proof",
            why,
            false,
        )
        .await;
    }
    // A proof whose key is not the proof's signer: the signature fails with the key it carries.
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(serde_json::from_value(client.jwk.clone()).unwrap());
    let stolen_key =
        jsonwebtoken::encode(&header, &claims("GET", url, Some(&token)), &es256().signing).unwrap();
    let r = get(url, &dpop, &[&stolen_key]).await;
    assert_dpop(
        r,
        StatusCode::UNAUTHORIZED,
        "invalid_dpop_proof",
        "bad proof signature",
        false,
    )
    .await;
    let r = get(url, &dpop, &[&good(), &good()]).await;
    assert_dpop(
        r,
        StatusCode::UNAUTHORIZED,
        "invalid_dpop_proof",
        "more than one DPoP header",
        false,
    )
    .await;

    // A token bound to nothing is a bearer token: fine as Bearer, refused under the DPoP scheme.
    let bearer = issuer.token(None, "orders:read");
    assert_eq!(
        get(url, &format!("Bearer {bearer}"), &[]).await.status(),
        StatusCode::OK
    );
    let p = proof(client, &claims("GET", url, Some(&bearer)));
    let r = get(url, &format!("DPoP {bearer}"), &[&p]).await;
    let why = "the token is not bound to a key: present it as a Bearer token";
    assert_dpop(r, StatusCode::UNAUTHORIZED, "invalid_token", why, false).await;

    // No token at all: both schemes are offered.
    let r = reqwest::Client::new().get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let offered: Vec<&str> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(offered, ["Bearer".to_owned(), format!("DPoP {ALGS}")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_checks_dpop_bound_tokens_on_every_request() {
    let issuer = issuer().await;
    let client = es256();
    let (listener, api) = bind().await;
    let verifier = Verifier::builder(issuer.base.clone())
        .audience(UAT)
        .public_origin(api.clone())
        .build()
        .unwrap();
    let router = orders_api::protected(&verifier);
    tokio::spawn(async move { axum::serve(listener, router).await });
    let order = format!("{api}/manage/orders/1");
    refusals(&issuer, &client, &order).await;

    // A DPoP request without a scope the route needs: 403 with a DPoP challenge.
    let token = issuer.token(Some(&jkt(&client)), "orders:read");
    let cancel = format!("{order}/cancel");
    let p = proof(&client, &claims("POST", &cancel, Some(&token)));
    let r = reqwest::Client::new()
        .post(&cancel)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", p)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!(r#"DPoP error="insufficient_scope", scope="orders:write", {ALGS}"#).as_str()
    );
    // Called directly, the verifier has no request to check a proof against: a bound token is refused.
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        keyward_client::VerifyError::BoundAsBearer
    );
}

/// Starts a gateway in front of orders-api (plain) for the test issuer; `public_origin` names its own address
/// when `pinned`. Returns the gateway's base URL.
async fn gateway(issuer: &Issuer, pinned: bool) -> String {
    let upstream = crate::verify::serve(orders_api::plain()).await;
    let (listener, base) = bind().await;
    let origin = if pinned {
        format!("public_origin = \"{base}\"\n")
    } else {
        String::new()
    };
    let text = format!(
        "upstream = \"{upstream}\"\nissuer = \"{}\"\naudience = \"{UAT}\"\n{origin}\
         [[route]]\nmethods = [\"GET\"]\npath = \"/manage/orders/{{id}}\"\nscopes = [\"orders:read\"]\n",
        issuer.base
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let config = config::load(&path, Some(&listener.local_addr().unwrap().to_string())).unwrap();
    let gw = Gateway::new(config).unwrap();
    tokio::spawn(keyward::gateway::serve(
        gw,
        listener,
        std::future::pending(),
    ));
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_checks_dpop_bound_tokens_and_forwards_neither_token_nor_proof() {
    let issuer = issuer().await;
    let client = es256();
    let gw = gateway(&issuer, true).await;
    let order = format!("{gw}/manage/orders/1");
    refusals(&issuer, &client, &order).await;

    let token = issuer.token(Some(&jkt(&client)), "orders:read");
    let p = proof(&client, &claims("GET", &order, Some(&token)));
    let r = get(&order, &format!("DPoP {token}"), &[&p]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let seen = &r.json::<Value>().await.unwrap()["seen"];
    assert_eq!(seen["x-keyward-client-id"], "client-1");
    assert_eq!(seen["authorization"], Value::Null);
    assert_eq!(seen["dpop"], Value::Null);

    // Without public_origin the URL is https:// and the Host the client sent, served over plain HTTP here.
    let derived = gateway(&issuer, false).await;
    let host = derived.trim_start_matches("http://");
    let url = format!("{derived}/manage/orders/1");
    let p = proof(
        &client,
        &claims(
            "GET",
            &format!("https://{host}/manage/orders/1"),
            Some(&token),
        ),
    );
    assert_eq!(
        get(&url, &format!("DPoP {token}"), &[&p]).await.status(),
        StatusCode::OK
    );
    let p = proof(&client, &claims("GET", &url, Some(&token)));
    let r = get(&url, &format!("DPoP {token}"), &[&p]).await;
    assert_dpop(
        r,
        StatusCode::UNAUTHORIZED,
        "invalid_dpop_proof",
        "htu does not match the request's URL",
        false,
    )
    .await;
}
