//! Introspection (RFC 7662) and revocation (RFC 7009) as SECURITY.md pins them.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::{TestApp, assert_error};

async fn introspect(app: &TestApp, caller: (&str, &str), token: &str) -> Value {
    let r = app
        .post_form("/oauth2/introspect", Some(caller), &[("token", token)])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

both_engines!(introspection_audience_rule_and_revocation, |app| {
    let (id, secret) = app.api_client().await;
    let token = app.access_token(&id, &secret, &[("scope", "read")]).await;

    // The client it was issued to sees it.
    let v = introspect(&app, (&id, &secret), &token).await;
    assert_eq!(v["active"], true);
    assert_eq!(
        (
            v["client_id"].as_str(),
            v["scope"].as_str(),
            v["aud"].as_str()
        ),
        (
            Some(id.as_str()),
            Some("read"),
            Some("https://api.example.com")
        )
    );
    assert_eq!(v["token_type"], "Bearer");

    // Another client sees nothing but active:false; a resource server of the audience sees it.
    let (other, other_secret) = app
        .client(json!({"name": "other", "resources": ["https://api.example.com"]}))
        .await;
    assert_eq!(
        introspect(&app, (&other, &other_secret), &token).await,
        json!({"active": false})
    );
    let (rs, rs_secret) = app
        .client(json!({"name": "orders api", "serves_resources": ["https://api.example.com"]}))
        .await;
    assert_eq!(
        introspect(&app, (&rs, &rs_secret), &token).await["active"],
        true
    );

    // Garbage and tampered tokens are inactive.
    assert_eq!(
        introspect(&app, (&id, &secret), "not-a-token").await,
        json!({"active": false})
    );
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        introspect(&app, (&id, &secret), &tampered).await,
        json!({"active": false})
    );

    // Client authentication is required; a missing token is invalid_request.
    assert_error(
        app.post_form("/oauth2/introspect", None, &[("token", &token)])
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    assert_error(
        app.post_form("/oauth2/introspect", Some((&id, &secret)), &[])
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;

    // Another client may not revoke it; the owner may, and it is inactive at once.
    let r = app
        .post_form(
            "/oauth2/revoke",
            Some((&other, &other_secret)),
            &[("token", &token)],
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    assert_eq!(
        introspect(&app, (&id, &secret), &token).await["active"],
        true
    );
    let r = app
        .post_form(
            "/oauth2/revoke",
            Some((&id, &secret)),
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        introspect(&app, (&id, &secret), &token).await,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&app, (&rs, &rs_secret), &token).await,
        json!({"active": false})
    );
    // Revoking an invalid token is a success (RFC 7009 §2.2); revoking twice too.
    assert_eq!(
        app.post_form("/oauth2/revoke", Some((&id, &secret)), &[("token", "junk")])
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_form("/oauth2/revoke", Some((&id, &secret)), &[("token", &token)])
            .await
            .status(),
        200
    );
    // GET is 405.
    let r = app
        .http
        .get(app.url("/oauth2/revoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
});

both_engines!(expired_tokens_are_inactive_after_leeway, |app| {
    let (id, secret) = app.api_client().await;
    let token = app.access_token(&id, &secret, &[]).await;
    app.clock.advance(900 + 14);
    assert_eq!(
        introspect(&app, (&id, &secret), &token).await["active"],
        true,
        "15 s leeway"
    );
    app.clock.advance(1);
    assert_eq!(
        introspect(&app, (&id, &secret), &token).await,
        json!({"active": false})
    );
});

#[tokio::test]
async fn a_token_from_another_deployment_is_inactive() {
    let eu = TestApp::sqlite().await;
    let us = TestApp::sqlite().await;
    let (id, secret) = eu.api_client().await;
    let token = eu.access_token(&id, &secret, &[]).await;
    let (us_id, us_secret) = us
        .client(json!({"name": "rs", "serves_resources": ["urn:keyward:admin"]}))
        .await;
    assert_eq!(
        introspect(&us, (&us_id, &us_secret), &token).await,
        json!({"active": false})
    );
}
