//! Accounts and what they delegated, through the admin API and the CLI: accounts created (a generated password
//! shown once), listed, changed and deleted; the apps an account authorized and its grants, listed and revoked;
//! the app fields of clients (type, redirect URIs) and the scope details of resources, checked.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use keyward::store::GrantRow;
use keyward_core::scope::ScopeSet;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::TestApp;

/// Calls the admin API with the admin token and returns the whole response (for its headers).
async fn admin_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .http
        .request(method, app.url(&format!("/admin/v1{path}")))
        .bearer_auth(app.admin_token().await);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// Asserts an admin API error: its status, code, and that the description names `field`.
fn assert_admin_error(status: StatusCode, body: &Value, want: StatusCode, code: &str, field: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["error_description"].as_str().unwrap().contains(field),
        "{body} should name {field}"
    );
}

/// Creates an account through the admin API; returns its view (with `password` when one was generated).
async fn account(app: &TestApp, spec: Value) -> Value {
    let (status, body) = app.admin_call(Method::POST, "/accounts", Some(spec)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

both_engines!(accounts_are_created_listed_changed_and_deleted, |app| {
    // Without a password, one is generated and shown in the creation's answer only, which must not be cached.
    let r = admin_raw(
        &app,
        Method::POST,
        "/accounts",
        Some(json!({"email": " Seller@Example.COM ", "partner_id": "10001"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let made: Value = r.json().await.unwrap();
    let id = made["account_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("acct_"), "{made}");
    assert_eq!(made["email"], "seller@example.com");
    assert_eq!(made["partner_id"], "10001");
    assert_eq!(made["role"], "user");
    assert_eq!(made["enabled"], true);
    let password = made["password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 40, "{made}");
    assert!(made.get("password_hash").is_none(), "{made}");

    let (s, shown) = app
        .admin_call(Method::GET, &format!("/accounts/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{shown}");
    assert_eq!(shown["email"], "seller@example.com");
    assert!(shown.get("password").is_none(), "{shown}");
    assert!(!shown.to_string().contains(&password), "{shown}");

    // A password given is never echoed.
    let given = account(
        &app,
        json!({"email": "ops@example.com", "password": "correct horse battery", "role": "operator"}),
    )
    .await;
    assert!(given.get("password").is_none(), "{given}");
    assert_eq!(given["role"], "operator");

    // Errors in the admin shape, naming the field; nothing is written.
    let count = || async {
        let (_, list) = app.admin_call(Method::GET, "/accounts", None).await;
        list["items"].as_array().unwrap().len()
    };
    let before = count().await;
    let (s, e) = app
        .admin_call(
            Method::POST,
            "/accounts",
            Some(json!({"email": "SELLER@example.com"})),
        )
        .await;
    assert_admin_error(s, &e, StatusCode::CONFLICT, "conflict", "email");
    for (body, field) in [
        (json!({"email": "not-an-address"}), "email"),
        (json!({}), "email"),
        (
            json!({"email": "a@b.example", "password": "short"}),
            "password",
        ),
        (json!({"email": "a@b.example", "role": "root"}), "role"),
        (
            json!({"email": "a@b.example", "partner_id": "has space"}),
            "partner_id",
        ),
        (json!({"email": "a@b.example", "colour": "red"}), "colour"),
    ] {
        let (s, e) = app
            .admin_call(Method::POST, "/accounts", Some(body.clone()))
            .await;
        assert_admin_error(s, &e, StatusCode::BAD_REQUEST, "invalid_request", field);
    }
    assert_eq!(before, count().await);

    // Listing pages by id.
    account(&app, json!({"email": "third@example.com"})).await;
    let (s, all) = app.admin_call(Method::GET, "/accounts", None).await;
    assert_eq!(s, StatusCode::OK, "{all}");
    let ids: Vec<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3, "{all}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{all}");
    assert!(all["next_after"].is_null(), "{all}");
    assert!(!all.to_string().contains("password"), "{all}");
    let (_, page) = app.admin_call(Method::GET, "/accounts?limit=2", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_after"], ids[1].as_str());
    let (_, rest) = app
        .admin_call(
            Method::GET,
            &format!("/accounts?limit=2&after={}", ids[1]),
            None,
        )
        .await;
    assert_eq!(rest["items"][0]["account_id"], ids[2].as_str());
    assert!(rest["next_after"].is_null(), "{rest}");
    let (s, e) = app
        .admin_call(Method::GET, "/accounts?limit=many", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");

    // Patch: disable, and only what is given changes.
    let (s, patched) = app
        .admin_call(
            Method::PATCH,
            &format!("/accounts/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["partner_id"], "10001");
    let (_, shown) = app
        .admin_call(Method::GET, &format!("/accounts/{id}"), None)
        .await;
    assert_eq!(shown["enabled"], false);
    let (s, e) = app
        .admin_call(
            Method::PATCH,
            &format!("/accounts/{id}"),
            Some(json!({"email": "ops@example.com"})),
        )
        .await;
    assert_admin_error(s, &e, StatusCode::CONFLICT, "conflict", "email");
    let (s, e) = app
        .admin_call(
            Method::PATCH,
            &format!("/accounts/{id}"),
            Some(json!({"password": "short"})),
        )
        .await;
    assert_admin_error(
        s,
        &e,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "password",
    );
    let (s, _) = app
        .admin_call(
            Method::PATCH,
            "/accounts/acct_missing",
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Delete.
    let (s, _) = app
        .admin_call(Method::DELETE, &format!("/accounts/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = app
        .admin_call(Method::GET, &format!("/accounts/{id}"), None)
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, _) = app
        .admin_call(Method::DELETE, &format!("/accounts/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Every change is in the audit log, by the admin client.
    let (_, audit) = app.admin_call(Method::GET, "/audit?limit=20", None).await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == id.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["account.delete", "account.update", "account.create"],
        "{audit}"
    );
    assert!(!audit.to_string().contains(&password));
});

both_engines!(accounts_need_the_admin_scope_to_change, |app| {
    let (ro, ro_secret) = app
        .client(json!({"name": "auditor", "resources": ["urn:keyward:admin"], "scopes": ["keyward:admin:read"]}))
        .await;
    let token = app.access_token(&ro, &ro_secret, &[]).await;
    for path in ["/accounts", "/grants", "/grants?live=true"] {
        let r = app
            .bearer(Method::GET, &app.url(&format!("/admin/v1{path}")), &token)
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r = app
        .http
        .post(app.url("/admin/v1/accounts"))
        .bearer_auth(&token)
        .json(&json!({"email": "x@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .bearer(Method::DELETE, &app.url("/admin/v1/grants/grt_x"), &token)
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .http
        .get(app.url("/admin/v1/accounts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
});

both_engines!(grants_and_authorizations_when_there_are_none, |app| {
    for path in [
        "/grants",
        "/grants?live=true",
        "/grants?account_id=acct_nobody&client_id=nobody&live=false&limit=5",
    ] {
        let (s, body) = app.admin_call(Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
        assert_eq!(body, json!({"items": [], "next_after": null}), "{path}");
    }
    let (s, e) = app
        .admin_call(Method::GET, "/grants?colour=red", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, e) = app
        .admin_call(Method::GET, "/grants?live=maybe", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, e) = app
        .admin_call(Method::GET, "/grants/grt_unknown", None)
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{e}"
    );
    let (s, _) = app
        .admin_call(Method::DELETE, "/grants/grt_unknown", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let id = account(&app, json!({"email": "seller@example.com"})).await["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, body) = app
        .admin_call(Method::GET, &format!("/accounts/{id}/authorizations"), None)
        .await;
    assert_eq!((s, body), (StatusCode::OK, json!({"items": []})));
    // An app the account never authorized.
    let (s, e) = app
        .admin_call(
            Method::DELETE,
            &format!("/accounts/{id}/authorizations/{}", app.admin.client_id),
            None,
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{e}"
    );
    let (s, _) = app
        .admin_call(Method::GET, "/accounts/acct_nobody/authorizations", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
});

/// A grant of `account` to `client` on `resource`, written as a code redemption would (no HTTP route makes one
/// without a browser), with the consent it follows from.
async fn grant(
    app: &TestApp,
    account: &str,
    client: &str,
    resource: &str,
    expires_in: i64,
) -> String {
    let now = app.clock.now();
    app.app
        .consents
        .consent_give(account, client, resource, &ScopeSet::parse("read").unwrap())
        .await
        .unwrap();
    let id = keyward::crypto::random_id("grt_");
    let mut tx = app.app.store.begin().await.unwrap();
    tx.grant_insert(&GrantRow {
        id: id.clone(),
        account_id: account.to_owned(),
        client_id: client.to_owned(),
        client_instance: app.instance(client).await,
        resource: resource.to_owned(),
        scopes: "read".into(),
        created_at: now,
        expires_at: now + expires_in,
        revoked_at: None,
        refresh_gen: 0,
        refreshed_at: now,
        dpop_jkt: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

both_engines!(grants_are_listed_filtered_and_revoked, |app| {
    app.resource("https://api.example.com", &["read"]).await;
    let mut apps = Vec::new();
    for name in ["one", "two"] {
        let (s, c) = app
            .admin_call(
                Method::POST,
                "/clients",
                Some(json!({
                    "client_id": format!("app-{name}"),
                    "name": name,
                    "client_type": "public",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "redirect_uris": ["https://app.example/cb"],
                    "resources": ["https://api.example.com"],
                    "scopes": ["read"],
                })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        apps.push(c["client_id"].as_str().unwrap().to_owned());
    }
    let a = account(&app, json!({"email": "a@example.com"})).await["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = account(&app, json!({"email": "b@example.com"})).await["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = "https://api.example.com";
    let a_one = grant(&app, &a, &apps[0], api, 3_600).await;
    let a_two = grant(&app, &a, &apps[1], api, 3_600).await;
    let b_one = grant(&app, &b, &apps[0], api, 60).await;

    let ids = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<_>>()
    };
    let (_, all) = app.admin_call(Method::GET, "/grants", None).await;
    assert_eq!(ids(&all), sorted(vec![&a_one, &a_two, &b_one]));
    // Empty filters are no filters.
    let (_, unfiltered) = app
        .admin_call(Method::GET, "/grants?account_id=&client_id=&after=", None)
        .await;
    assert_eq!(ids(&unfiltered), ids(&all));
    let (_, of_a) = app
        .admin_call(Method::GET, &format!("/grants?account_id={a}"), None)
        .await;
    assert_eq!(ids(&of_a), sorted(vec![&a_one, &a_two]));
    let (_, of_one) = app
        .admin_call(Method::GET, &format!("/grants?client_id={}", apps[0]), None)
        .await;
    assert_eq!(ids(&of_one), sorted(vec![&a_one, &b_one]));
    let (_, page) = app.admin_call(Method::GET, "/grants?limit=2", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_after"], page["items"][1]["id"]);

    let (s, g) = app
        .admin_call(Method::GET, &format!("/grants/{a_one}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    assert_eq!(g["account_id"], a.as_str());
    assert_eq!(g["client_id"], apps[0].as_str());
    assert_eq!(g["resource"], api);
    assert_eq!(g["scopes"], json!(["read"]));
    assert!(g["revoked_at"].is_null());

    let (s, authorized) = app
        .admin_call(Method::GET, &format!("/accounts/{a}/authorizations"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{authorized}");
    let items = authorized["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{authorized}");
    assert_eq!(items[0]["client_id"], "app-one");
    assert_eq!(items[0]["name"], "one");
    assert_eq!(items[0]["resource"], api);
    assert_eq!(items[0]["scopes"], json!(["read"]));

    // Revoking a grant; once expired or revoked a grant is no longer live.
    let (s, _) = app
        .admin_call(Method::DELETE, &format!("/grants/{a_two}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, g) = app
        .admin_call(Method::GET, &format!("/grants/{a_two}"), None)
        .await;
    assert!(g["revoked_at"].is_i64(), "{g}");
    app.clock.advance(120);
    let (_, live) = app.admin_call(Method::GET, "/grants?live=true", None).await;
    assert_eq!(ids(&live), vec![a_one.clone()]);

    // Withdrawing an authorization revokes that app's grants and forgets the consent.
    let (s, _) = app
        .admin_call(
            Method::DELETE,
            &format!("/accounts/{a}/authorizations/{}", apps[0]),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, g) = app
        .admin_call(Method::GET, &format!("/grants/{a_one}"), None)
        .await;
    assert!(g["revoked_at"].is_i64(), "{g}");
    let (_, authorized) = app
        .admin_call(Method::GET, &format!("/accounts/{a}/authorizations"), None)
        .await;
    assert_eq!(
        authorized["items"].as_array().unwrap().len(),
        1,
        "{authorized}"
    );
    assert_eq!(authorized["items"][0]["client_id"], "app-two");
    let (_, live) = app.admin_call(Method::GET, "/grants?live=true", None).await;
    assert_eq!(live["items"], json!([]));
    // The account's other grants and b's are untouched; deleting b takes its grants along.
    let (_, g) = app
        .admin_call(Method::GET, &format!("/grants/{b_one}"), None)
        .await;
    assert!(g["revoked_at"].is_null(), "{g}");
    let (s, _) = app
        .admin_call(Method::DELETE, &format!("/accounts/{b}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .admin_call(Method::GET, &format!("/grants/{b_one}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
});

both_engines!(app_fields_of_clients_and_scope_details_are_checked, |app| {
    app.resource("https://api.example.com", &["read", "write"])
        .await;
    // A public client: no secret, and it says what it is.
    let r = admin_raw(
        &app,
        Method::POST,
        "/clients",
        Some(json!({
            "name": "Mobile app",
            "client_type": "public",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["https://app.example/cb", "http://127.0.0.1:8765/cb"],
            "description": "Reads your orders",
            "refresh_token_ttl": "30d",
            "resources": ["https://api.example.com"],
            "scopes": ["read"],
        })),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let made: Value = r.json().await.unwrap();
    assert!(made.get("client_secret").is_none(), "{made}");
    assert_eq!(made["client_type"], "public");
    assert_eq!(made["auth_methods"], json!(["none"]));
    assert_eq!(
        made["redirect_uris"],
        json!(["https://app.example/cb", "http://127.0.0.1:8765/cb"])
    );
    assert_eq!(made["description"], "Reads your orders");
    assert_eq!(made["refresh_token_ttl"], 30 * 86_400);
    assert_eq!(made["secrets"], json!([]));
    let id = made["client_id"].as_str().unwrap();
    let (_, shown) = app
        .admin_call(Method::GET, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(shown["client_type"], "public");
    // A confidential client is the default, with a secret.
    let (_, confidential) = app
        .admin_call(
            Method::POST,
            "/clients",
            Some(json!({"name": "backend", "resources": ["https://api.example.com"]})),
        )
        .await;
    assert_eq!(confidential["client_type"], "confidential");
    assert!(confidential["client_secret"].is_string(), "{confidential}");

    let code = ["authorization_code"];
    let before = app.app.store.count_rows("clients").await.unwrap();
    for (body, field) in [
        (json!({"name": "x", "grant_types": code}), "redirect_uris"),
        (
            json!({"name": "x", "grant_types": code, "redirect_uris": ["http://app.example/cb"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "grant_types": code, "redirect_uris": ["javascript:alert(1)"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "grant_types": code, "redirect_uris": ["https://app.example/cb#frag"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "client_type": "public"}),
            "client_credentials",
        ),
        (json!({"name": "x", "client_type": "secret"}), "client_type"),
        (
            json!({"name": "x", "grant_types": ["refresh_token"]}),
            "refresh_token",
        ),
        (
            json!({"name": "x", "refresh_token_ttl": "5s"}),
            "refresh_token_ttl",
        ),
    ] {
        let (s, e) = app
            .admin_call(Method::POST, "/clients", Some(body.clone()))
            .await;
        assert_admin_error(s, &e, StatusCode::BAD_REQUEST, "invalid_request", field);
    }
    assert_eq!(before, app.app.store.count_rows("clients").await.unwrap());

    // Scope details: keys must be scopes of the resource.
    let (s, e) = app
        .admin_call(
            Method::POST,
            "/resources",
            Some(json!({
                "identifier": "https://other.example.com",
                "name": "Other",
                "scopes": ["read"],
                "scope_details": {"write": {"description": "Change things"}},
            })),
        )
        .await;
    assert_admin_error(
        s,
        &e,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "scope_details",
    );
    let details = json!({"read": {"description": "See your items", "category": "Item", "access": "View Only"}});
    let (s, res) = app
        .admin_call(
            Method::POST,
            "/resources",
            Some(json!({
                "identifier": "https://other.example.com",
                "name": "Other",
                "scopes": ["read"],
                "scope_details": details,
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{res}");
    assert_eq!(res["scope_details"], details);
    let (s, e) = app
        .admin_call(
            Method::PATCH,
            "/resources/https%3A%2F%2Fother.example.com",
            Some(json!({"scope_details": {"read": {"colour": "red"}}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
});

/// Runs the `keyward` binary on the test server's database, with `stdin` as its standard input.
fn keyward(app: &TestApp, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .args(["--database", &app.database])
        .env("KEYWARD_DATA_DIR", app.dir.path())
        .env("KEYWARD_ISSUER", &app.base)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run keyward");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("keyward output")
}

fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "keyward failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

both_engines!(cli_creates_accounts_and_revokes_grants, |app| {
    let text = stdout_of(&keyward(
        &app,
        &[
            "accounts",
            "create",
            "--email",
            "cli-seller@example.com",
            "--partner-id",
            "20002",
        ],
        "",
    ));
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let id = field("account_id");
    let password = field("password");
    assert!(password.len() >= 40, "{text}");
    assert!(text.contains("shown once"), "{text}");
    // Visible through the admin API at once (accounts are read from the database).
    let (s, shown) = app
        .admin_call(Method::GET, &format!("/accounts/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{shown}");
    assert_eq!(shown["email"], "cli-seller@example.com");
    assert_eq!(shown["partner_id"], "20002");
    assert_eq!(shown["role"], "user");
    let (_, listed) = app.admin_call(Method::GET, "/accounts", None).await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["account_id"] == id.as_str()),
        "{listed}"
    );
    let (_, audit) = app.admin_call(Method::GET, "/audit?limit=5", None).await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "account.create"
                && e["target"] == id.as_str()
                && e["actor"] == "cli"),
        "{audit}"
    );

    // --password-stdin: one line, never printed; a short one is refused.
    let out = keyward(
        &app,
        &[
            "accounts",
            "create",
            "--email",
            "op@example.com",
            "--role",
            "operator",
            "--password-stdin",
            "--json",
        ],
        "a long enough password\nignored\n",
    );
    let made: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert!(made.get("password").is_none(), "{made}");
    assert_eq!(made["role"], "operator");
    let op = made["account_id"].as_str().unwrap().to_owned();
    let out = keyward(
        &app,
        &[
            "accounts",
            "create",
            "--email",
            "short@example.com",
            "--password-stdin",
        ],
        "short\n",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password"));

    let list: Value = serde_json::from_str(&stdout_of(&keyward(
        &app,
        &["accounts", "list", "--json"],
        "",
    )))
    .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let human = stdout_of(&keyward(&app, &["accounts", "show", &op], ""));
    assert!(
        human.contains("op@example.com") && human.contains("operator"),
        "{human}"
    );
    // Key allowances: on create, and replaced with `accounts allow`; a scope the resource lacks is refused.
    app.resource("https://api.cli.example", &["a", "b"]).await;
    let made: Value = serde_json::from_str(&stdout_of(&keyward(
        &app,
        &[
            "accounts",
            "create",
            "--email",
            "keys@example.com",
            "--key-scope",
            "https://api.cli.example=a,b",
            "--json",
        ],
        "",
    )))
    .unwrap();
    assert_eq!(
        made["key_scopes"],
        json!({"https://api.cli.example": ["a", "b"]})
    );
    let holder = made["account_id"].as_str().unwrap().to_owned();
    let said = stdout_of(&keyward(
        &app,
        &[
            "accounts",
            "allow",
            &holder,
            "--key-scope",
            "https://api.cli.example=b",
        ],
        "",
    ));
    assert!(said.contains("https://api.cli.example"), "{said}");
    let (_, shown) = app
        .admin_call(Method::GET, &format!("/accounts/{holder}"), None)
        .await;
    assert_eq!(
        shown["key_scopes"],
        json!({"https://api.cli.example": ["b"]})
    );
    for bad in ["https://api.cli.example=c", "no-equals-sign"] {
        let out = keyward(
            &app,
            &["accounts", "allow", &holder, "--key-scope", bad],
            "",
        );
        assert!(!out.status.success(), "{bad}");
    }
    stdout_of(&keyward(&app, &["accounts", "allow", &holder], ""));
    let (_, shown) = app
        .admin_call(Method::GET, &format!("/accounts/{holder}"), None)
        .await;
    assert_eq!(shown["key_scopes"], json!({}));

    stdout_of(&keyward(&app, &["accounts", "disable", &op], ""));
    let (_, shown) = app
        .admin_call(Method::GET, &format!("/accounts/{op}"), None)
        .await;
    assert_eq!(shown["enabled"], false);
    stdout_of(&keyward(&app, &["accounts", "enable", &op], ""));
    let (_, shown) = app
        .admin_call(Method::GET, &format!("/accounts/{op}"), None)
        .await;
    assert_eq!(shown["enabled"], true);

    // Clients with app fields, and grants listed and revoked from the command line.
    app.resource("https://api.example.com", &["read"]).await;
    let out = keyward(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "Mobile",
            "--client-id",
            "mobile",
            "--public",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--redirect-uri",
            "https://app.example/cb",
            "--description",
            "Reads your orders",
            "--resource",
            "https://api.example.com",
            "--json",
        ],
        "",
    );
    let client: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(client["client_type"], "public");
    assert!(client.get("client_secret").is_none(), "{client}");
    assert_eq!(client["redirect_uris"], json!(["https://app.example/cb"]));
    let refused = keyward(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "bad",
            "--resource",
            "https://api.example.com",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            "javascript:alert(1)",
        ],
        "",
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("redirect_uris"));

    let g = grant(&app, &id, "mobile", "https://api.example.com", 3_600).await;
    let grants: Value = serde_json::from_str(&stdout_of(&keyward(
        &app,
        &[
            "grants",
            "list",
            "--account",
            &id,
            "--client",
            "mobile",
            "--live",
            "--json",
        ],
        "",
    )))
    .unwrap();
    assert_eq!(grants[0]["id"], g.as_str(), "{grants}");
    assert_eq!(grants[0]["scopes"], json!(["read"]));
    stdout_of(&keyward(&app, &["grants", "revoke", &g], ""));
    let (_, shown) = app
        .admin_call(Method::GET, &format!("/grants/{g}"), None)
        .await;
    assert!(shown["revoked_at"].is_i64(), "{shown}");
    let grants: Value = serde_json::from_str(&stdout_of(&keyward(
        &app,
        &["grants", "list", "--live", "--json"],
        "",
    )))
    .unwrap();
    assert_eq!(grants, json!([]));

    stdout_of(&keyward(&app, &["accounts", "delete", &op], ""));
    let (s, _) = app
        .admin_call(Method::GET, &format!("/accounts/{op}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let missing = keyward(&app, &["accounts", "show", &op], "");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
});
