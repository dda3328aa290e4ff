//! The consent flow in a real headless Chromium: a seller opens an app's authorization request, signs in, sees the
//! consent page (app name, description, scopes in plain words), allows, and lands on the app's redirect URI with
//! a code and the state; the app then redeems the code over HTTP. Screenshots go to `target/browser/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyward::service::accounts::AccountInput;
use keyward::service::admin::Actor;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::browser::Browser;
use crate::harness::{TestApp, claims};

/// Port 9 refuses connections: the browser shows an error page but keeps the URL, as an app's callback would.
const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn shot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join(format!("browser/{name}.png"))
}

both_engines!(chromium_signs_in_consents_and_lands_with_a_code, |app| {
    consent_in_browser(&app).await;
});

async fn consent_in_browser(app: &TestApp) {
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/resources",
            Some(json!({
                "identifier": "https://marketplace.example",
                "name": "Marketplace APIs",
                "scopes": ["orders:read", "items:write"],
                "scope_details": {
                    "orders:read": {"description": "See your orders", "category": "Orders", "access": "View Only"},
                    "items:write": {"description": "Create and update your items", "category": "Item", "access": "Full Access"}
                }
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/clients",
            Some(json!({
                "name": "Repricer Pro",
                "description": "Keeps your prices competitive.",
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [REDIRECT],
                "resources": ["https://marketplace.example"],
                "scopes": ["orders:read", "items:write"]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client_id = body["client_id"].as_str().unwrap().to_owned();
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    let (account, _) = app
        .app
        .accounts
        .account_create(
            &Actor::cli(),
            AccountInput {
                email: Some("seller@example.com".into()),
                password: Some("correct horse battery".into()),
                partner_id: Some("10001".into()),
                ..AccountInput::default()
            },
        )
        .await
        .unwrap();

    let verifier = "browser-flow-verifier-0123456789-abcdefghijklmnop";
    let challenge = B64.encode(keyward::crypto::sha256(verifier.as_bytes()));
    let state = "st<&>\"' é";
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&state={}&code_challenge={challenge}\
         &code_challenge_method=S256",
        app.url("/oauth2/authorize"),
        keyward_core::form::encode_component(&client_id),
        keyward_core::form::encode_component(REDIRECT),
        keyward_core::form::encode_component(state),
    );

    let browser = Browser::start().await;
    browser.goto(&url).await;
    // Not signed in: the login page.
    browser
        .find("input#email")
        .await
        .send_keys("seller@example.com")
        .await;
    browser
        .find("input#password")
        .await
        .send_keys("correct horse battery")
        .await;
    browser.screenshot(shot("login")).await;
    browser.find("button#sign-in").await.click().await;

    // The consent page names the app and says what it may do, in plain words.
    let name = browser.find("#app-name").await;
    assert_eq!(name.text().await, "Repricer Pro");
    let page = browser.source().await;
    assert!(page.contains("Keeps your prices competitive."), "{page}");
    assert!(page.contains("See your orders"), "{page}");
    assert!(page.contains("Create and update your items"), "{page}");
    assert!(page.contains("seller@example.com"), "{page}");
    browser.screenshot(shot("consent")).await;
    browser.find("button#allow").await.click().await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut landed = browser.current_url().await;
    while !landed.starts_with(REDIRECT) {
        assert!(
            Instant::now() < deadline,
            "no redirect to the app: still on {landed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        landed = browser.current_url().await;
    }
    browser.quit().await;

    let query = landed.split_once('?').unwrap().1;
    let params = keyward_core::form::Params::parse(query.as_bytes()).unwrap();
    assert_eq!(params.single("state").unwrap(), Some(state));
    assert_eq!(params.single("iss").unwrap(), Some(app.base.as_str()));
    let code = params.required("code").unwrap().to_owned();

    // The app redeems the code.
    let r = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert!(t["refresh_token"].as_str().unwrap().starts_with("kwr_"));
    let c = claims(t["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], account.account_id.as_str());
    assert_eq!(c["client_id"], client_id.as_str());
    assert_eq!(c["scope"], "orders:read items:write");
}
