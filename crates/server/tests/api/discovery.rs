//! Discovery metadata (RFC 8414), health, and readiness.

use serde_json::Value;

use crate::both_engines;

both_engines!(metadata_lists_what_is_implemented, |app| {
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let v: Value = app.get_json(&app.url(path)).await;
        assert_eq!(v["issuer"], app.base.as_str());
        assert_eq!(v["token_endpoint"], app.url("/oauth2/token"));
        assert_eq!(v["jwks_uri"], app.url("/oauth2/jwks"));
        assert_eq!(v["introspection_endpoint"], app.url("/oauth2/introspect"));
        assert_eq!(v["revocation_endpoint"], app.url("/oauth2/revoke"));
        assert_eq!(
            v["grant_types_supported"],
            serde_json::json!(["client_credentials", "authorization_code", "refresh_token"])
        );
        assert_eq!(v["authorization_endpoint"], app.url("/oauth2/authorize"));
        assert_eq!(
            v["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(v["response_types_supported"], serde_json::json!(["code"]));
        // Every endpoint it lists answers.
        for key in ["jwks_uri"] {
            let r = app.http.get(v[key].as_str().unwrap()).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
});

#[tokio::test]
async fn readyz_reports_a_closed_database() {
    let app = crate::harness::TestApp::sqlite().await;
    app.app.store.close().await;
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
}

#[tokio::test]
async fn database_outage_is_a_fast_503_while_tokens_keep_coming_from_memory() {
    let app = crate::harness::TestApp::sqlite().await;
    let (id, secret) = app.api_client().await;
    let token = app.access_token(&id, &secret, &[]).await;
    app.app.store.close().await;
    // Issuing needs no database: it still works.
    app.access_token(&id, &secret, &[]).await;
    // Introspection needs the denylist: a 503 with Retry-After, never a 500.
    let r = app
        .post_form(
            "/oauth2/introspect",
            Some((&id, &secret)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "server_error");
}
