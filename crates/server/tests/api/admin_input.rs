//! The admin API's reading of its input and the answers its description promises: `null` refused where not
//! nullable, paging numbers clamped, query, body and media-type errors in Keyward's words, bounded overlaps, and
//! concurrent changes that never fail with a server error.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;

both_engines!(the_api_documents_and_refuses_null_and_clamps_pages, |app| {
    // `null` where a member is not nullable is refused, not read as "absent" (it rotated every key).
    let before = app.app.admin.keys_list().len();
    let (s, e) = app
        .admin_call(Method::POST, "/keys/rotate", Some(json!({"alg": null})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error_description"], "alg: must not be null");
    assert_eq!(before, app.app.admin.keys_list().len());
    let (s, e) = app
        .admin_call(
            Method::POST,
            "/clients",
            Some(json!({"name": "n", "scopes": null})),
        )
        .await;
    assert_eq!(
        (s, e["error_description"].as_str()),
        (StatusCode::BAD_REQUEST, Some("scopes: must not be null"))
    );
    // `owner_account` is nullable on create, and refused on update whatever its value.
    let (s, e) = app
        .admin_call(
            Method::POST,
            "/clients",
            Some(json!({"name": "n", "owner_account": null, "resources": []})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let id = e["client_id"].as_str().unwrap();
    for owner in [json!(null), json!("acct_x")] {
        let (s, e) = app
            .admin_call(
                Method::PATCH,
                &format!("/clients/{id}"),
                Some(json!({"owner_account": owner})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        assert!(
            e["error_description"]
                .as_str()
                .unwrap()
                .starts_with("owner_account"),
            "{e}"
        );
    }
    // Paging numbers out of range are clamped as documented; none shows framework text.
    for query in [
        "limit=0",
        "limit=-5",
        "limit=1000000",
        "limit=99999999999999999999999",
    ] {
        let (s, page) = app
            .admin_call(Method::GET, &format!("/clients?{query}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{query}: {page}");
        let (s, page) = app
            .admin_call(
                Method::GET,
                &format!("/audit?{query}&before=99999999999999999999"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{query}: {page}");
        assert!(!page["items"].as_array().unwrap().is_empty());
    }
    let (_, one) = app.admin_call(Method::GET, "/clients?limit=0", None).await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    for (query, field) in [
        ("/clients?limit=many", "`limit`"),
        ("/grants?live=yes", "`live`"),
        ("/clients?limit=1&limit=2", "`limit` is repeated"),
        ("/clients?colour=red", "colour"),
        ("/clients/x/usage?hours=0", "hours"),
    ] {
        let (s, e) = app.admin_call(Method::GET, query, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}");
        let said = e["error_description"].as_str().unwrap();
        assert!(
            said.contains(field) && !said.contains("Failed to"),
            "{query}: {said}"
        );
    }
    // A body that is not JSON, or too large, or not sent as JSON, says so in the admin error shape.
    let token = app.admin_token().await;
    let url = app.url("/admin/v1/clients");
    let r = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .body("{\"name\": \"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"name": "a", "limits": {"token": "1/s", "token": "off"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_description"], "token: given twice", "{e}");
    // A method the path does not take: 405 in the same shape, with Allow.
    let r = app.bearer(Method::PUT, &url, &token).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET,HEAD,POST");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let big = json!({"name": "x".repeat(70 * 1024)});
    let r = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    // Overlaps that would overflow a time are refused.
    let (s, e) = app
        .admin_call(
            Method::POST,
            &format!("/clients/{id}/secrets"),
            Some(json!({"retire_old_after": i64::MAX})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .starts_with("retire_old_after")
    );
    let (s, e) = app
        .admin_call(
            Method::POST,
            &format!("/clients/{id}/secrets"),
            Some(json!({"retire_old_after": true})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let said = e["error_description"].as_str().unwrap();
    assert!(
        said.starts_with("retire_old_after: ") && said.contains("whole seconds"),
        "{said}"
    );
});

both_engines!(concurrent_account_changes_never_fail, |app| {
    // Regression: on SQLite a transaction that read before writing could not wait for a concurrent writer, and
    // answered 500 "database is locked" (found by schemathesis with two workers).
    let token = app.admin_token().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let (s, a) = app
            .admin_call(
                Method::POST,
                "/accounts",
                Some(json!({"email": format!("busy{i}@example.com")})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{a}");
        ids.push(a["account_id"].as_str().unwrap().to_owned());
    }
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let url = app.url(&format!("/admin/v1/accounts/{id}"));
        let request = if i % 2 == 0 {
            app.http
                .patch(url)
                .json(&json!({"enabled": false, "partner_id": ""}))
        } else {
            app.http.delete(url)
        };
        tasks.push(tokio::spawn(request.bearer_auth(&token).send()));
        let rotate = app
            .http
            .post(app.url("/admin/v1/keys/rotate"))
            .bearer_auth(&token);
        tasks.push(tokio::spawn(rotate.send()));
    }
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
});
