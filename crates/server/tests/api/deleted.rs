//! A deleted client leaves nothing usable behind, on every node: its access tokens are inactive at once, its
//! unredeemed codes are spent, and a client created later with the same `client_id` inherits nothing of it (not
//! its tokens, codes, refresh tokens, consents, usage or quota).

use std::collections::BTreeMap;
use std::time::Duration;

use keyward::service::accounts::AccountInput;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::{TestApp, assert_error, eventually};
use crate::oauth_agent::*;

const ID: &str = "shop-app";

/// The app, with the same id each time it is made: an account's key (so its usage is counted), allowed every
/// grant, two tokens a day.
async fn make(app: &TestApp, owner: &str) -> String {
    let (status, body) = app
        .admin_call(
            Method::POST,
            "/clients",
            Some(json!({
                "client_id": ID,
                "name": "Shop app",
                "owner_account": owner,
                "grant_types": ["client_credentials", "authorization_code", "refresh_token"],
                "redirect_uris": [REDIRECT],
                "resources": [API],
                "scopes": ["orders:read", "orders:write"],
                "limits": {"tokens_per_day": 3},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["client_secret"].as_str().unwrap().to_owned()
}

/// Whether `token` is active to a resource server of its audience, asked on `node`; `None` while the node does
/// not know the resource server yet.
async fn answer_on(node: &TestApp, rs: (&str, &str), token: &str) -> Option<bool> {
    let r = node
        .post_form("/oauth2/introspect", Some(rs), &[("token", token)])
        .await;
    if r.status() != StatusCode::OK {
        return None;
    }
    Some(r.json::<Value>().await.unwrap()["active"] == true)
}

/// Whether `token` is active to a resource server of its audience, asked on `node`, which knows it.
async fn active_on(node: &TestApp, rs: (&str, &str), token: &str) -> bool {
    answer_on(node, rs, token)
        .await
        .expect("introspection answers 200")
}

both_engines!(a_deleted_client_leaves_nothing_usable, |app| {
    fixture(&app).await;
    let b = app
        .node_with(&[
            ("KEYWARD_FAILED_AUTH_LIMIT_ADDRESS", "off"),
            ("KEYWARD_FAILED_AUTH_LIMIT_CLIENT", "off"),
        ])
        .await;
    b.wait_loaded().await;
    let owner = account_with(
        &app,
        AccountInput {
            email: Some("owner@example.com".into()),
            key_scopes: Some(BTreeMap::from([(
                API.to_owned(),
                vec!["orders:read".into(), "orders:write".into()],
            )])),
            ..AccountInput::default()
        },
    )
    .await;
    let (rs, rs_secret) = app
        .client(json!({"name": "orders api", "resources": [], "serves_resources": [API]}))
        .await;
    let rs = (rs.as_str(), rs_secret.as_str());
    let secret = make(&app, &owner).await;
    let old = Auth::Basic(ID, &secret);

    // What the first client leaves: a client_credentials token (two of its three a day), a delegated grant with
    // its access and refresh tokens, an unredeemed code, a consent, and usage.
    let cc = app.access_token(ID, &secret, &[]).await;
    app.access_token(ID, &secret, &[]).await;
    let agent = Agent::new(&app);
    agent.sign_in(EMAIL).await;
    let p = pkce();
    let code = agent
        .code(&app, &request(ID, &p.challenge, "s"), EMAIL)
        .await;
    let (delegated, refresh_token, _) = tokens(redeem(&app, old, &code, &p.verifier).await).await;
    let waiting = pkce();
    let unredeemed = agent
        .code(&app, &request(ID, &waiting.challenge, "s"), EMAIL)
        .await;
    app.app.usage.flush(&app.app.store).await.unwrap();
    for token in [&cc, &delegated] {
        assert!(active_on(&app, rs, token).await);
    }
    eventually(Duration::from_secs(2), "B knows the tokens", || async {
        answer_on(&b, rs, &cc).await == Some(true)
    })
    .await;

    // Deleted on A: its tokens are inactive on A at once, and on B within a second.
    let (status, _) = app
        .admin_call(Method::DELETE, &format!("/clients/{ID}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for token in [&cc, &delegated] {
        assert!(!active_on(&app, rs, token).await);
    }
    eventually(
        Duration::from_secs(1),
        "B refuses the deleted client's tokens",
        || async { !active_on(&b, rs, &cc).await && !active_on(&b, rs, &delegated).await },
    )
    .await;

    // Made again with the same id: it inherits nothing.
    let secret = make(&app, &owner).await;
    let new = Auth::Basic(ID, &secret);
    eventually(Duration::from_secs(2), "B knows the new client", || async {
        b.token(ID, &secret, &[]).await.status() == StatusCode::OK
    })
    .await;
    for node in [&app, &b] {
        for token in [&cc, &delegated] {
            assert!(!active_on(node, rs, token).await, "an old token is active");
            // Not even to the new client itself.
            let r = node
                .post_form(
                    "/oauth2/introspect",
                    Some((ID, &secret)),
                    &[("token", token)],
                )
                .await;
            assert_eq!(r.json::<Value>().await.unwrap(), json!({"active": false}));
        }
    }
    // The old code and refresh token are refused.
    let r = redeem(&app, new, &unredeemed, &waiting.verifier).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let r = refresh(&app, new, &refresh_token, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // The consent is gone: the person is asked again.
    let p = pkce();
    consent_page(
        agent
            .authorize(&request(ID, &p.challenge, "s"), EMAIL)
            .await,
    )
    .await;
    // Its usage starts from nothing (B's token above counted one on B, not yet flushed anywhere but B).
    let (_, usage) = app
        .admin_call(Method::GET, &format!("/clients/{ID}/usage"), None)
        .await;
    assert_eq!(usage["total"], 0, "{usage}");
    // Its quota too: three tokens a day, of which B's first token above spent one; the deleted client's two do
    // not count.
    let fresh = app.access_token(ID, &secret, &[]).await;
    assert!(active_on(&app, rs, &fresh).await, "its own token is active");
    assert_eq!(app.token(ID, &secret, &[]).await.status(), StatusCode::OK);
    assert_eq!(
        app.token(ID, &secret, &[]).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
});
