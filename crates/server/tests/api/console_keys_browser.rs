//! The console's public-key keys in a real headless Chromium, where console.js runs under the page's CSP: only the
//! chosen kind's fields show; PEM public keys (P-256, RSA as PS256, Ed25519) become the JWKs the test expects, with their
//! RFC 7638 thumbprint as kid; "generate a key pair" fills in the public JWK and offers the private key as a PKCS#8
//! PEM download; the form then posts the public JWK and nothing of the private key; and the downloaded private key
//! gets tokens for the key it made. Screenshots go to `target/browser/console-keys-*.png`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keyward::service::accounts::AccountInput;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::browser::{Browser, Element};
use crate::client_assertions::{claims as assertion_claims, with_assertion};
use crate::harness::{TestApp, claims};
use crate::jws::TestKey;
use crate::oauth_agent::{PASSWORD, account_with};

const RESOURCE: &str = "https://api.shop.example";
const EMAIL: &str = "signer@example.com";

fn shot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join(format!("browser/{name}.png"))
}

/// One DER element: `tag`, its length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    match n {
        0..=127 => out.push(n as u8),
        128..=255 => out.extend([0x81, n as u8]),
        _ => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// A test key's public half as a PEM `PUBLIC KEY` (SPKI, RFC 5280 §4.1.2.7), as `openssl pkey -pubout` writes it.
fn spki_pem(key: &TestKey) -> String {
    let jwk = key.bare_jwk();
    let bytes = |m: &str| URL_SAFE_NO_PAD.decode(jwk[m].as_str().unwrap()).unwrap();
    let (algorithm, public) = match jwk["kty"].as_str().unwrap() {
        // id-Ed25519 (RFC 8410), no parameters; the raw public key.
        "OKP" => (der(0x30, &der(0x06, &[0x2b, 0x65, 0x70])), bytes("x")),
        "EC" => {
            // id-ecPublicKey with the prime256v1 curve; the point uncompressed.
            let oids = [
                der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
                der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
            ]
            .concat();
            (der(0x30, &oids), [vec![4], bytes("x"), bytes("y")].concat())
        }
        _ => {
            // rsaEncryption, NULL parameters; RSAPublicKey { n, e } with positive integers.
            let oid = der(
                0x06,
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
            );
            // DER integers are minimal: a leading zero only where the top bit is set.
            let int = |b: Vec<u8>| match b[0] & 0x80 {
                0 => der(0x02, &b),
                _ => der(0x02, &[vec![0], b].concat()),
            };
            let rsa = der(0x30, &[int(bytes("n")), int(bytes("e"))].concat());
            (der(0x30, &[oid, vec![0x05, 0x00]].concat()), rsa)
        }
    };
    let bits = der(0x03, &[vec![0], public].concat());
    let spki = der(0x30, &[algorithm, bits].concat());
    let body = STANDARD.encode(spki);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// The value of the JWK text box, read as JSON.
async fn jwk_field(browser: &Browser) -> Value {
    let text = browser
        .execute("return document.getElementById('jwk').value;", json!([]))
        .await;
    serde_json::from_str(text.as_str().unwrap()).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Waits up to 5 s for the status line under the JWK box to contain `needle`.
async fn status_says(browser: &Browser, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = browser.find("#jwk-status").await.text().await;
        if text.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "#jwk-status reads {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn hidden(e: &Element<'_>) -> bool {
    e.attribute("hidden").await.is_some()
}

both_engines!(
    chromium_converts_pem_and_makes_a_key_pair_it_never_posts,
    |app| {
        keys_in_browser(&app).await;
    }
);

async fn keys_in_browser(app: &TestApp) {
    app.resource(RESOURCE, &["orders:read"]).await;
    account_with(
        app,
        AccountInput {
            email: Some(EMAIL.into()),
            key_scopes: Some(BTreeMap::from([(
                RESOURCE.to_owned(),
                vec!["orders:read".to_owned()],
            )])),
            ..AccountInput::default()
        },
    )
    .await;
    let browser = Browser::start().await;
    browser.goto(&app.url("/console/keys/new")).await;
    browser.find("input#email").await.send_keys(EMAIL).await;
    browser
        .find("input#password")
        .await
        .send_keys(PASSWORD)
        .await;
    browser.find("button#sign-in").await.click().await;
    browser.find("#kind-public-key").await;

    // The script shows only the chosen kind's fields: a secret's, none, at first.
    assert!(hidden(&browser.find("#public-key-fields").await).await);
    assert!(hidden(&browser.find("#federated-fields").await).await);
    browser.find("#kind-federated").await.click().await;
    assert!(!hidden(&browser.find("#federated-fields").await).await);
    assert!(hidden(&browser.find("#public-key-fields").await).await);
    browser.find("#kind-public-key").await.click().await;
    assert!(!hidden(&browser.find("#public-key-fields").await).await);
    assert!(
        !hidden(&browser.find(".jwk-tools").await).await,
        "the key tools stayed hidden: console.js or WebCrypto missing"
    );

    // PEM public keys become JWKs: P-256 as ES256, RSA as the algorithm chosen.
    let clear = "document.getElementById('jwk').value = '';";
    // Chromium has had Ed25519 in WebCrypto since version 137.
    let keys = [
        (TestKey::es256(), "ES256"),
        (TestKey::ps256(), "PS256"),
        (TestKey::eddsa(), "EdDSA"),
    ];
    for (key, alg) in keys {
        browser.execute(clear, json!([])).await;
        browser.find("#jwk").await.send_keys(&spki_pem(&key)).await;
        browser
            .find(&format!(
                "#rsa-alg option[value=\"{}\"]",
                if alg == "PS256" { "PS256" } else { "RS256" }
            ))
            .await
            .click()
            .await;
        browser.find("#convert-pem").await.click().await;
        status_says(&browser, "Converted").await;
        let jwk = jwk_field(&browser).await;
        let mut expected = key.bare_jwk();
        expected["kid"] = json!(keyward_client::dpop::thumbprint(&key.bare_jwk()).unwrap());
        expected["alg"] = json!(alg);
        expected["use"] = json!("sig");
        assert_eq!(jwk, expected, "{alg}");
    }
    browser.screenshot(shot("console-keys-pem")).await;
    // A private key pasted as PEM is refused by the script, which says why.
    browser.execute(clear, json!([])).await;
    browser
        .find("#jwk")
        .await
        .send_keys("-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----")
        .await;
    browser.find("#convert-pem").await.click().await;
    status_says(&browser, "private key").await;

    // Generate a key pair: the public JWK fills the box; the private key is a PEM download, shown once.
    browser.execute(clear, json!([])).await;
    browser.find("#generate-key").await.click().await;
    status_says(&browser, "Made a P-256 key pair").await;
    assert!(!hidden(&browser.find("#generated").await).await);
    let public = jwk_field(&browser).await;
    let kid = public["kid"].as_str().unwrap().to_owned();
    assert_eq!(public["alg"], "ES256");
    assert_eq!(
        kid,
        keyward_client::dpop::thumbprint(&public).unwrap(),
        "the kid is the RFC 7638 thumbprint"
    );
    assert!(public.get("d").is_none(), "{public}");
    let link = browser.find("#private-key-download").await;
    assert_eq!(
        link.attribute("download").await.as_deref(),
        Some(format!("keyward-{kid}.pem").as_str())
    );
    let href = link.attribute("href").await.unwrap();
    let pem = String::from_utf8(
        STANDARD
            .decode(
                href.strip_prefix("data:application/x-pem-file;base64,")
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    let private = TestKey::es256_from_pkcs8(&STANDARD.decode(&body).unwrap());
    let mut expected = private.bare_jwk();
    for m in ["kid", "alg", "use"] {
        expected[m] = public[m].clone();
    }
    assert_eq!(
        public, expected,
        "the download is the private half of the public JWK"
    );
    browser.screenshot(shot("console-keys-generated")).await;

    // Watch what the form posts, then create the key.
    browser
        .execute(
            "document.querySelector('form[action=\"/console/keys\"]').addEventListener('submit', (e) => {
               sessionStorage.setItem('posted', new URLSearchParams(new FormData(e.target)).toString());
             });",
            json!([]),
        )
        .await;
    browser
        .find("#name")
        .await
        .send_keys("Made in the browser")
        .await;
    browser
        .find("input[name=scope][value=\"orders:read\"]")
        .await
        .click()
        .await;
    browser.find("#create").await.click().await;
    browser.find("#no-secret").await;
    let id = browser.find("#client-id").await.text().await;
    assert_eq!(browser.find("code.kid").await.text().await, kid);
    browser.screenshot(shot("console-keys-created")).await;
    let posted = browser
        .execute("return sessionStorage.getItem('posted');", json!([]))
        .await;
    let posted: Vec<(String, String)> = url_pairs(posted.as_str().expect("the form's body"));
    let names: Vec<&str> = posted.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["csrf", "name", "environment", "scope", "kind", "jwk"],
        "{posted:?}"
    );
    let sent: Value = serde_json::from_str(&posted[5].1).unwrap();
    assert_eq!(sent, public, "the form posted the public JWK as generated");
    for (_, v) in &posted {
        assert!(
            !v.contains("PRIVATE") && !v.contains(&body[..40]) && !v.contains("\"d\""),
            "the private key was posted: {v}"
        );
    }

    // The private key that stayed in the browser gets tokens for the key.
    let assertion = private.jws(
        json!({ "kid": kid }),
        &assertion_claims(app, &id, &app.url("/oauth2/token")),
    );
    let r = with_assertion(
        app,
        "/oauth2/token",
        &assertion,
        None,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let status = r.status();
    let token: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(
        claims(token["access_token"].as_str().unwrap())["client_id"],
        id.as_str()
    );

    // The key page lists the key, with rotation's forms and no secret's.
    browser.find("#to-key").await.click().await;
    let table = browser.find("#public-keys").await.text().await;
    assert!(table.contains(&kid) && table.contains("ES256"), "{table}");
    let page = browser.source().await;
    assert!(!page.contains("id=\"rotate\"") && page.contains("id=\"add-key\""));
    browser.screenshot(shot("console-keys-key")).await;
    browser.quit().await;
}

/// A form body's pairs, decoded.
fn url_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| {
                keyward_core::form::decode_component(s).unwrap_or_else(|_| {
                    // A text box's line breaks: read them as the server's text boxes do.
                    keyward_core::form::Params::parse_with_text(format!("x={s}").as_bytes(), &["x"])
                        .unwrap()
                        .single("x")
                        .unwrap()
                        .unwrap_or("")
                        .to_owned()
                })
            };
            (decode(k), decode(v))
        })
        .collect()
}
