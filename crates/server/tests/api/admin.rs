//! The admin API: bearer-token guard, validation with clear errors, the audit log, and the OpenAPI document
//! kept true by calling every operation it lists.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::TestApp;

both_engines!(admin_api_requires_an_admin_token, |app| {
    let url = app.url("/admin/v1/clients");
    let r = app.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"keyward\"");
    let r = app
        .http
        .get(&url)
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    // A valid token for another audience is refused.
    let (id, secret) = app.api_client().await;
    let api_token = app.access_token(&id, &secret, &[]).await;
    assert_eq!(
        app.http
            .get(&url)
            .bearer_auth(&api_token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // A read-only admin client may read but not write.
    let (ro, ro_secret) = app.client(json!({"name": "auditor", "resources": ["urn:keyward:admin"], "scopes": ["keyward:admin:read"]})).await;
    let ro_token = app.access_token(&ro, &ro_secret, &[]).await;
    assert_eq!(
        app.http
            .get(&url)
            .bearer_auth(&ro_token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = app
        .http
        .post(&url)
        .bearer_auth(&ro_token)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    // A revoked admin token stops working at once.
    let admin_token = app.admin_token().await;
    let r = app
        .post_form(
            "/oauth2/revoke",
            Some((&app.admin.client_id, &app.admin.client_secret)),
            &[("token", &admin_token)],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.http
            .get(&url)
            .bearer_auth(&admin_token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
});

both_engines!(
    validation_errors_say_what_is_wrong_and_write_nothing,
    |app| {
        app.resource("api", &["read"]).await;
        let cases = [
            (json!({"resources": ["api"]}), "name"),
            (json!({"name": "x", "resources": ["nope"]}), "resources"),
            (
                json!({"name": "x", "resources": ["api"], "scopes": ["write"]}),
                "scopes",
            ),
            (
                json!({"name": "x", "grant_types": ["password"]}),
                "grant_types",
            ),
            (json!({"name": "x", "client_id": "acct_1"}), "client_id"),
            (json!({"name": "x", "colour": "red"}), "colour"),
            (
                json!({"name": "x", "resources": ["api"], "default_resource": "other"}),
                "default_resource",
            ),
        ];
        let before = app.app.store.count_rows("clients").await.unwrap();
        for (body, field) in cases {
            let (status, err) = app
                .admin_call(Method::POST, "/clients", Some(body.clone()))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(err["error"], "invalid_request");
            assert!(
                err["error_description"].as_str().unwrap().contains(field),
                "{err} should name {field}"
            );
        }
        assert_eq!(before, app.app.store.count_rows("clients").await.unwrap());
        let (s, e) = app
            .admin_call(
                Method::POST,
                "/resources",
                Some(json!({"identifier": "api", "name": "dup"})),
            )
            .await;
        assert_eq!(
            (s, e["error"].as_str()),
            (StatusCode::CONFLICT, Some("conflict"))
        );
        let (s, e) = app
            .admin_call(
                Method::POST,
                "/resources",
                Some(json!({"identifier": "has space", "name": "x"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        let (s, e) = app
            .admin_call(
                Method::POST,
                "/resources",
                Some(json!({"identifier": "long", "name": "x", "access_token_ttl": "2h"})),
            )
            .await;
        assert!(
            s == 400
                && e["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("access_token_ttl"),
            "{e}"
        );
        let (s, _) = app
            .admin_call(Method::GET, "/clients/does-not-exist", None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let r = app
            .http
            .post(app.url("/admin/v1/clients"))
            .bearer_auth(app.admin_token().await)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        // A resource in use cannot be deleted; the admin resource never.
        let (id, _) = app
            .client(json!({"name": "user", "resources": ["api"]}))
            .await;
        let (s, _) = app.admin_call(Method::DELETE, "/resources/api", None).await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, _) = app
            .admin_call(Method::DELETE, "/resources/urn:keyward:admin", None)
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        // Every change is in the audit log, newest first, with who and from where.
        let (_, audit) = app.admin_call(Method::GET, "/audit?limit=5", None).await;
        let first = &audit["items"][0];
        assert_eq!(first["action"], "client.create");
        assert_eq!(first["target"], id.as_str());
        assert_eq!(first["actor"], format!("client:{}", app.admin.client_id));
        assert_eq!(first["source"], "127.0.0.1");
    }
);

both_engines!(clients_list_pages, |app| {
    app.resource("api", &["read"]).await;
    for i in 0..5 {
        app.client(
            // `z` sorts after every hex digit, so no generated UUID (the admin client's) falls among them.
            json!({"client_id": format!("z{i}"), "name": format!("z{i}"), "resources": ["api"]}),
        )
        .await;
    }
    let (_, page) = app
        .admin_call(Method::GET, "/clients?limit=2&after=z0", None)
        .await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["z1", "z2"]);
    assert_eq!(page["next_after"], "z2");
    let (s, _) = app
        .admin_call(Method::GET, "/clients?limit=many", None)
        .await;
    assert_eq!(s, 400);
});

/// Every operation the router serves, as (method, path under /admin/v1).
const SERVED: [(&str, &str); 31] = [
    ("get", "/openapi.json"),
    ("get", "/clients"),
    ("post", "/clients"),
    ("get", "/clients/{id}"),
    ("patch", "/clients/{id}"),
    ("delete", "/clients/{id}"),
    ("post", "/clients/{id}/disable"),
    ("post", "/clients/{id}/enable"),
    ("get", "/clients/{id}/secrets"),
    ("post", "/clients/{id}/secrets"),
    ("delete", "/clients/{id}/secrets/{secret_id}"),
    ("get", "/clients/{id}/usage"),
    ("get", "/resources"),
    ("post", "/resources"),
    ("get", "/resources/{id}"),
    ("patch", "/resources/{id}"),
    ("delete", "/resources/{id}"),
    ("get", "/keys"),
    ("post", "/keys/rotate"),
    ("get", "/audit"),
    ("get", "/accounts"),
    ("post", "/accounts"),
    ("get", "/accounts/{id}"),
    ("patch", "/accounts/{id}"),
    ("delete", "/accounts/{id}"),
    ("post", "/accounts/{id}/reset-link"),
    ("get", "/accounts/{id}/authorizations"),
    ("delete", "/accounts/{id}/authorizations/{client_id}"),
    ("get", "/grants"),
    ("get", "/grants/{id}"),
    ("delete", "/grants/{id}"),
];

#[tokio::test]
async fn openapi_document_matches_the_api() {
    let app = TestApp::sqlite().await;
    let doc: Value = app.get_json(&app.url("/admin/v1/openapi.json")).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if ["parameters", "summary", "description"].contains(&method.as_str()) {
                continue;
            }
            documented.insert((method.clone(), path.clone()));
            call_documented(&app, method, path, op).await;
        }
    }
    let served: BTreeSet<(String, String)> = SERVED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, served,
        "the OpenAPI document and the router disagree"
    );
}

/// Calls one documented operation on fresh objects and checks the answer is a documented success.
async fn call_documented(app: &TestApp, method: &str, path: &str, op: &Value) {
    let n = keyward::crypto::random_id("");
    let res = app.resource(&format!("api-{n}"), &["read"]).await;
    let free = app.resource(&format!("free-{n}"), &["read"]).await;
    let (client, _) = app
        .client(json!({"name": "walk", "resources": [res["identifier"]]}))
        .await;
    let (_, secrets) = app
        .admin_call(Method::GET, &format!("/clients/{client}/secrets"), None)
        .await;
    let secret_id = secrets["items"][0]["id"].as_str().unwrap().to_owned();
    // An account that authorized the client, and the grant it gave it (written as a code redemption would).
    let (_, account) = app
        .admin_call(
            Method::POST,
            "/accounts",
            Some(json!({"email": format!("walk-{n}@example.com")})),
        )
        .await;
    let account = account["account_id"].as_str().unwrap().to_owned();
    let resource = res["identifier"].as_str().unwrap();
    let scope = keyward_core::scope::ScopeSet::parse("read").unwrap();
    app.app
        .consents
        .consent_give(&account, &client, resource, &scope)
        .await
        .unwrap();
    let grant_id = keyward::crypto::random_id("grt_");
    let now = app.clock.now();
    let mut tx = app.app.store.begin().await.unwrap();
    tx.grant_insert(&keyward::store::GrantRow {
        id: grant_id.clone(),
        account_id: account.clone(),
        client_id: client.clone(),
        client_instance: app.instance(&client).await,
        resource: resource.to_owned(),
        scopes: "read".into(),
        created_at: now,
        expires_at: now + 3_600,
        revoked_at: None,
        refresh_gen: 0,
        refreshed_at: now,
        dpop_jkt: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let concrete = if path.starts_with("/resources/") {
        path.replace("{id}", free["id"].as_str().unwrap())
    } else if path.starts_with("/accounts/") {
        path.replace("{id}", &account)
            .replace("{client_id}", &client)
    } else if path.starts_with("/grants/") {
        path.replace("{id}", &grant_id)
    } else {
        path.replace("{id}", &client)
            .replace("{secret_id}", &secret_id)
    };
    let body = match (method, path) {
        ("post", "/clients") => Some(json!({"name": "made", "resources": [res["identifier"]]})),
        ("patch", "/clients/{id}") => Some(json!({"name": "renamed"})),
        ("post", "/clients/{id}/secrets") => Some(json!({"retire_old_after": 60})),
        ("post", "/resources") => {
            Some(json!({"identifier": format!("new-{n}"), "name": "n", "scopes": ["a"]}))
        }
        ("patch", "/resources/{id}") => Some(json!({"name": "renamed", "access_token_ttl": 600})),
        ("post", "/keys/rotate") => Some(json!({})),
        ("post", "/accounts") => Some(json!({"email": format!("new-{n}@example.com")})),
        ("patch", "/accounts/{id}") => Some(json!({"enabled": false})),
        _ => None,
    };
    let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let (status, answer) = app.admin_call(m, &concrete, body).await;
    let documented: Vec<u16> = op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|k| k.parse().ok())
        .collect();
    assert!(
        status.is_success(),
        "{method} {path} answered {status}: {answer}"
    );
    assert!(
        documented.contains(&status.as_u16()),
        "{method} {path}: {status} is not documented ({documented:?})"
    );
}

both_engines!(admin_cannot_lock_itself_out, |app| {
    let me = app.admin.client_id.clone();
    let (s, e) = app
        .admin_call(Method::POST, &format!("/clients/{me}/disable"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let (s, _) = app
        .admin_call(Method::DELETE, &format!("/clients/{me}"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = app
        .admin_call(
            Method::PATCH,
            &format!("/clients/{me}"),
            Some(json!({"scopes": ["keyward:admin:read"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Nor may it take away its own way to get a token.
    for body in [
        json!({"grant_types": []}),
        json!({"resources": [], "scopes": []}),
    ] {
        let (s, e) = app
            .admin_call(Method::PATCH, &format!("/clients/{me}"), Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{body}: {e}");
        assert!(
            e["error_description"].as_str().unwrap().contains("lock"),
            "{e}"
        );
    }
    // Its last secret that works cannot be retired; once another exists, the old one can.
    let (_, secrets) = app
        .admin_call(Method::GET, &format!("/clients/{me}/secrets"), None)
        .await;
    let first = secrets["items"][0]["id"].as_str().unwrap().to_owned();
    let (s, e) = app
        .admin_call(
            Method::DELETE,
            &format!("/clients/{me}/secrets/{first}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let token = app.admin_token().await;
    let r = app
        .http
        .post(app.url(&format!("/admin/v1/clients/{me}/secrets")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let fresh: Value = r.json().await.unwrap();
    let r = app
        .bearer(
            Method::DELETE,
            &app.url(&format!("/admin/v1/clients/{me}/secrets/{first}")),
            &token,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let new_secret = fresh["client_secret"].as_str().unwrap();
    let token = app.access_token(&me, new_secret, &[]).await;
    // The admin API's own resource keeps the admin scope.
    for scopes in [json!(["keyward:admin:read"]), json!([])] {
        let r = app
            .http
            .patch(app.url("/admin/v1/resources/urn:keyward:admin"))
            .bearer_auth(&token)
            .json(&json!({ "scopes": scopes }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT, "{scopes}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["error_description"]
                .as_str()
                .unwrap()
                .contains("keyward:admin"),
            "{e}"
        );
    }
    // Harmless changes to itself and to its resource are fine, and it keeps its access.
    for (path, body) in [
        (format!("/clients/{me}"), json!({"name": "root"})),
        (
            "/resources/urn:keyward:admin".to_owned(),
            json!({"scopes": ["keyward:admin", "keyward:admin:read", "extra"]}),
        ),
    ] {
        let r = app
            .http
            .patch(app.url(&format!("/admin/v1{path}")))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let token = app.access_token(&me, new_secret, &[]).await;
    let r = app
        .bearer(Method::GET, &app.url("/admin/v1/clients"), &token)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
});

both_engines!(concurrent_rotations_lose_no_update, |app| {
    let (id, _) = app.api_client().await;
    let token = app.admin_token().await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let request = app
                .http
                .post(app.url(&format!("/admin/v1/clients/{id}/secrets")))
                .bearer_auth(&token)
                .json(&json!({"retire_old_after": 0}));
            tokio::spawn(request.send())
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status(), StatusCode::CREATED);
    }
    // Each rotation retired every secret that existed when it ran; serialised, exactly one stays live.
    let (_, list) = app
        .admin_call(Method::GET, &format!("/clients/{id}/secrets"), None)
        .await;
    let live = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["expires_at"].is_null())
        .count();
    assert_eq!(live, 1, "{list}");
});

both_engines!(a_served_resource_cannot_be_deleted, |app| {
    let res = app.resource("served", &["read"]).await;
    app.client(json!({"name": "rs", "serves_resources": ["served"]}))
        .await;
    let (s, e) = app
        .admin_call(
            Method::DELETE,
            &format!("/resources/{}", res["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(e["error_description"].as_str().unwrap().contains("served"));
});
