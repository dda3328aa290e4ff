//! Text PostgreSQL cannot hold (NUL) in every place a request carries text: path segments, query values, form
//! fields and JSON strings, on the OAuth endpoints, the admin API and the console. Each is a 4xx that says what is
//! wrong, never a 500, on both engines; and the store maps PostgreSQL's refusal to a client error as a backstop.

use std::collections::BTreeMap;

use keyward::http::error::ApiError;
use keyward::service::accounts::AccountInput;
use keyward::store::StoreError;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::oauth_agent::{Agent, account_with, hidden};

/// Asserts a 400 whose text (JSON `error_description` or a page) says `says`; returns the text.
async fn refused(r: Response, what: &str, says: &[&str]) -> String {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {text}");
    let said = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error_description"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.clone());
    for word in says {
        assert!(said.contains(word), "{what} should say {word:?}: {said}");
    }
    said
}

both_engines!(nul_at_the_oauth_endpoints_is_invalid_request, |app| {
    let (id, secret) = app.api_client().await;
    let token = app.access_token(&id, &secret, &[]).await;
    let control = ["control character"];
    for path in ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"] {
        // A form field, with Basic credentials and without.
        let r = app
            .post_form(
                path,
                Some((&id, &secret)),
                &[("token", "a\0b"), ("scope", "read\0")],
            )
            .await;
        refused(r, path, &control).await;
        let r = app
            .post_raw(
                path,
                None,
                "application/x-www-form-urlencoded",
                "client_id=x%00&client_secret=y",
            )
            .await;
        refused(r, path, &control).await;
        // A JSON string.
        let body = json!({"client_id": id, "client_secret": secret, "token": "\u{0}"}).to_string();
        let r = app.post_raw(path, None, "application/json", &body).await;
        refused(r, path, &control).await;
        // A query value (parameters never travel in the URL).
        let r = app
            .http
            .post(app.url(&format!("{path}?token=%00")))
            .basic_auth(&id, Some(&secret))
            .send()
            .await
            .unwrap();
        refused(r, path, &["query string"]).await;
    }
    // Basic credentials whose id holds an encoded NUL.
    let r = app.token("x\0y", &secret, &[]).await;
    refused(r, "Basic", &control).await;
    // The token still works: nothing above changed anything.
    let r = app
        .post_form(
            "/oauth2/introspect",
            Some((&id, &secret)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["active"], true);
    // The authorization endpoint: a query value, and the consent form's fields.
    let r = app
        .http
        .get(app.url("/oauth2/authorize?response_type=code&client_id=%00"))
        .send()
        .await
        .unwrap();
    refused(r, "GET /oauth2/authorize", &control).await;
    let r = app
        .post_raw(
            "/oauth2/authorize",
            None,
            "application/x-www-form-urlencoded",
            "client_id=%00&decision=allow",
        )
        .await;
    refused(r, "POST /oauth2/authorize", &control).await;
});

both_engines!(nul_in_the_admin_api_is_refused_naming_the_field, |app| {
    app.resource("api", &["read"]).await;
    let (client, _) = app.client(json!({"name": "c", "resources": ["api"]})).await;
    let token = app.admin_token().await;
    let nul = ["NUL"];
    // Path segments of every kind of operation.
    for path in [
        "/clients/a%00b",
        "/clients/a%00b/secrets",
        "/clients/a%00b/usage",
        &format!("/clients/{client}/secrets/sec%00"),
        "/resources/res%00",
        "/accounts/acct%00",
        "/accounts/acct%00/authorizations",
        "/grants/grt%00",
    ] {
        let r = app
            .bearer(Method::GET, &app.url(&format!("/admin/v1{path}")), &token)
            .await;
        // A path with a secret id only has DELETE.
        if r.status() == StatusCode::METHOD_NOT_ALLOWED {
            let r = app
                .bearer(
                    Method::DELETE,
                    &app.url(&format!("/admin/v1{path}")),
                    &token,
                )
                .await;
            refused(r, path, &["path parameter", "NUL"]).await;
            continue;
        }
        refused(r, path, &["path parameter", "NUL"]).await;
    }
    for (method, path) in [
        (Method::DELETE, "/clients/x%00"),
        (Method::POST, "/clients/x%00/disable"),
        (Method::DELETE, "/resources/x%00"),
        (Method::DELETE, "/accounts/x%00"),
        (Method::DELETE, "/grants/x%00"),
        (Method::DELETE, "/accounts/acct_x/authorizations/c%00"),
    ] {
        let r = app
            .bearer(method, &app.url(&format!("/admin/v1{path}")), &token)
            .await;
        refused(r, path, &["path parameter", "NUL"]).await;
    }
    // Query values.
    for (path, name) in [
        ("/clients?q=%00", "q"),
        ("/clients?after=a%00", "after"),
        ("/accounts?q=x%00", "q"),
        ("/audit?q=%00", "q"),
        ("/grants?account_id=%00", "account_id"),
        ("/grants?client_id=%00", "client_id"),
        ("/grants?after=%00", "after"),
    ] {
        let r = app
            .bearer(Method::GET, &app.url(&format!("/admin/v1{path}")), &token)
            .await;
        refused(r, path, &[&format!("`{name}`"), "control character"]).await;
    }
    // JSON strings, in members, list items, object keys and nested objects.
    let cases = [
        (
            Method::POST,
            "/clients".to_owned(),
            json!({"name": "a\u{0}"}),
            "name",
        ),
        (
            Method::POST,
            "/clients".to_owned(),
            json!({"name": "a", "resources": ["api", "\u{0}"]}),
            "resources[1]",
        ),
        (
            Method::POST,
            "/clients".to_owned(),
            json!({"name": "a", "owner_account": "acct_\u{0}"}),
            "owner_account",
        ),
        (
            Method::POST,
            "/clients".to_owned(),
            json!({"name": "a", "client_id": "\u{0}"}),
            "client_id",
        ),
        (
            Method::PATCH,
            format!("/clients/{client}"),
            json!({"default_resource": "\u{0}"}),
            "default_resource",
        ),
        (
            Method::PATCH,
            format!("/clients/{client}"),
            json!({"limits": {"token": "\u{0}"}}),
            "limits.token",
        ),
        (
            Method::POST,
            format!("/clients/{client}/secrets"),
            json!({"retire_old_after": "1\u{0}"}),
            "retire_old_after",
        ),
        (
            Method::POST,
            "/resources".to_owned(),
            json!({"identifier": "\u{0}", "name": "x"}),
            "identifier",
        ),
        (
            Method::PATCH,
            "/resources/api".to_owned(),
            json!({"scope_details": {"read\u{0}": {}}}),
            "scope_details",
        ),
        (
            Method::POST,
            "/accounts".to_owned(),
            json!({"email": "a\u{0}@example.com"}),
            "email",
        ),
        (
            Method::POST,
            "/accounts".to_owned(),
            json!({"email": "b@example.com", "partner_id": "\u{0}"}),
            "partner_id",
        ),
        (
            Method::POST,
            "/accounts".to_owned(),
            json!({"email": "c@example.com", "key_scopes": {"api": ["\u{0}"]}}),
            "key_scopes.api[0]",
        ),
        (
            Method::POST,
            "/keys/rotate".to_owned(),
            json!({"alg": "ES256\u{0}"}),
            "alg",
        ),
    ];
    let clients = app.app.store.count_rows("clients").await.unwrap();
    for (method, path, body, field) in cases {
        let (status, e) = app.admin_call(method, &path, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {e}");
        assert_eq!(e["error"], "invalid_request");
        let said = e["error_description"].as_str().unwrap();
        assert!(
            said.starts_with(field) && said.contains(nul[0]),
            "{path} {body}: {said}"
        );
    }
    assert_eq!(clients, app.app.store.count_rows("clients").await.unwrap());
});

both_engines!(nul_in_the_console_is_a_page_that_says_so, |app| {
    app.resource("https://api.example", &["read"]).await;
    account_with(
        &app,
        AccountInput {
            email: Some("ops@example.com".into()),
            role: Some("operator".into()),
            key_scopes: Some(BTreeMap::from([(
                "https://api.example".to_owned(),
                vec!["read".to_owned()],
            )])),
            ..AccountInput::default()
        },
    )
    .await;
    // The login form.
    let agent = Agent::new(&app);
    let page = agent.get("/login").await.text().await.unwrap();
    let r = agent
        .post(
            "/login",
            &[
                ("email", "ops\0@example.com"),
                ("password", "x"),
                ("csrf", &hidden(&page, "csrf")),
            ],
        )
        .await;
    refused(r, "POST /login", &["control character"]).await;
    agent.sign_in("ops@example.com").await;
    // Path segments and query values of the account's and the operator's pages.
    for path in [
        "/console/keys/a%00b",
        "/console/keys/a%00b/delete",
        "/console/admin/accounts?q=%00",
        "/console/admin/clients?q=a%00",
        "/console/admin/audit?q=%00",
        "/console/usage?days=%00",
    ] {
        let r = agent.get(path).await;
        refused(r, path, &["control character"]).await;
    }
    // A form: a key's name holding NUL changes nothing.
    let page = agent.get("/console/keys/new").await.text().await.unwrap();
    let csrf = hidden(&page, "csrf");
    let r = agent
        .post(
            "/console/keys",
            &[
                ("csrf", &csrf),
                ("name", "a\0b"),
                ("environment", "https://api.example"),
                ("scope", "read"),
            ],
        )
        .await;
    refused(r, "POST /console/keys", &["control character"]).await;
    for path in [
        "/console/keys/a%00b/disable",
        "/console/admin/accounts/acct%00/disable",
        "/console/admin/clients/c%00/enable",
    ] {
        let r = agent.post(path, &[("csrf", &csrf)]).await;
        refused(r, path, &["control character"]).await;
    }
    assert_eq!(app.app.store.count_rows("clients").await.unwrap(), 1);
});

both_engines!(
    the_store_maps_text_it_cannot_hold_to_a_client_error,
    |app| {
        // Below the edges: whatever reaches the database with NUL is the request's mistake, never a 500.
        let outcome = app.app.store.client_get("a\0b").await;
        let error = match outcome {
            Err(e @ StoreError::Unstorable(_)) => e,
            // SQLite stores NUL and simply finds no such client.
            Err(StoreError::NotFound) if app.database.ends_with(".db") => return,
            other => panic!("expected a refusal of the text, got {other:?}"),
        };
        match ApiError::from(error) {
            ApiError::Plain {
                status, message, ..
            } => {
                assert_eq!(status, StatusCode::BAD_REQUEST);
                assert!(message.contains("NUL"), "{message}");
            }
            other => panic!("expected a 400, got {other:?}"),
        }
    }
);
