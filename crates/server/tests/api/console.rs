//! The console over HTTP (a cookie-keeping client, every hop checked): keys made only within the account's
//! allowance, form errors that keep what was typed, ownership (another account's key is a 404 and stays as it
//! was), CSRF, the secret page's headers, an account's keys following the account, and usage counted in memory
//! and flushed (no database write per token). The same flow in Chromium is in `console_browser.rs`.

use std::collections::BTreeMap;

use keyward::service::accounts::AccountInput;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::{TestApp, claims};
use crate::oauth_agent::{
    Agent, PASSWORD, account_with, assert_page_headers, hidden, location, unescape,
};

pub(crate) const API: &str = "https://api.shop.example";
const OTHER: &str = "https://other.example";

/// A resource with two scopes (tokens live an hour), another resource, and an account allowed `allowed`
/// of the first; returns the account id and a signed-in agent.
pub(crate) async fn setup(app: &TestApp, email: &str, allowed: &[&str]) -> (String, Agent) {
    if app.app.memory.registry.resources().get(API).is_none() {
        let (s, body) = app
            .admin_call(
                Method::POST,
                "/resources",
                Some(json!({"identifier": API, "name": "Shop API", "scopes": ["orders:read", "orders:write"],
                            "access_token_ttl": "1h"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        app.resource(OTHER, &["other:read"]).await;
    }
    let id = account_with(
        app,
        AccountInput {
            email: Some(email.into()),
            key_scopes: Some(BTreeMap::from([(
                API.to_owned(),
                allowed.iter().map(|s| s.to_string()).collect(),
            )])),
            ..AccountInput::default()
        },
    )
    .await;
    let agent = Agent::new(app);
    agent.sign_in(email).await;
    (id, agent)
}

/// The CSRF token of a console page.
pub(crate) async fn csrf(agent: &Agent) -> String {
    let page = agent.get("/console/keys").await;
    assert_eq!(page.status(), StatusCode::OK);
    hidden(&page.text().await.unwrap(), "csrf")
}

/// The text of the element with this id (its first text node), unescaped.
pub(crate) fn by_id(html: &str, id: &str) -> String {
    let open = format!("id=\"{id}\"");
    let at = html
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    unescape(&rest[start..start + end])
}

/// Creates a key through the form; returns the response.
pub(crate) async fn create(
    agent: &Agent,
    csrf: &str,
    name: &str,
    env: &str,
    scopes: &[&str],
) -> reqwest::Response {
    let mut form = vec![("csrf", csrf), ("name", name), ("environment", env)];
    form.extend(scopes.iter().map(|s| ("scope", *s)));
    agent.post("/console/keys", &form).await
}

async fn token_status(app: &TestApp, id: &str, secret: &str) -> StatusCode {
    app.token(id, secret, &[]).await.status()
}

both_engines!(keys_are_made_within_the_allowance_and_owned, |app| {
    let (alice_id, alice) = setup(&app, "alice@example.com", &["orders:read"]).await;
    let csrf_a = csrf(&alice).await;

    // The form offers what the account may use, and nothing else.
    let form = alice.get("/console/keys/new").await.text().await.unwrap();
    assert!(
        form.contains("orders:read") && !form.contains("orders:write"),
        "{form}"
    );
    assert!(!form.contains(OTHER), "{form}");

    // Mistakes come back with a message beside the field and what was typed.
    let r = create(&alice, &csrf_a, "  ", API, &["orders:read"]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("id=\"name-error\"") && html.contains("checked"),
        "{html}"
    );
    for (env, scopes, field) in [
        (API, &["orders:write"][..], "scopes-error"),
        (API, &[][..], "scopes-error"),
        (OTHER, &["other:read"][..], "environment-error"),
    ] {
        let r = create(&alice, &csrf_a, "Typed name", env, scopes).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{env} {scopes:?}");
        let html = r.text().await.unwrap();
        assert!(html.contains(&format!("id=\"{field}\"")), "{field}: {html}");
        assert!(html.contains("value=\"Typed name\""), "{html}");
    }

    // Created: the secret is on the page once, never cached, and it works.
    let r = create(&alice, &csrf_a, "Order sync <prod>", API, &["orders:read"]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_page_headers(r.headers(), "secret page");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(
        !html.contains("Order sync <prod>") && unescape(&html).contains("Order sync <prod>"),
        "{html}"
    );
    let (id, secret) = (by_id(&html, "client-id"), by_id(&html, "client-secret"));
    assert!(secret.starts_with("kw_sk_"), "{secret}");
    let r = app.token(&id, &secret, &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    let c = claims(t["access_token"].as_str().unwrap());
    assert_eq!(
        (c["client_id"].as_str(), c["aud"].as_str()),
        (Some(id.as_str()), Some(API))
    );
    assert_eq!(c["scope"], "orders:read");
    // The secret page says to cache the token and links the guide, filled in with the key's environment.
    let guide = unescape(
        &html[html
            .find("id=\"guide\"")
            .map(|i| html[..i].rfind("href=\"").unwrap() + 6)
            .unwrap()..],
    )
    .split('"')
    .next()
    .unwrap()
    .to_owned();
    assert_eq!(
        guide,
        "/console/guide?resource=https%3A%2F%2Fapi.shop.example"
    );
    let page = alice.get(&guide).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    let token_url = format!("{}/oauth2/token", app.base);
    assert_eq!(by_id(&page, "token-url"), token_url);
    let config = by_id(&page, "agent-config");
    assert!(
        config.contains(&format!("token_url = \"{token_url}\""))
            && config.contains(&format!("resource = \"{API}\"")),
        "{config}"
    );
    // An API the deployment does not know is never echoed into the snippets.
    let page = alice
        .get("/console/guide?resource=%3Cscript%3E")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        by_id(&page, "agent-config").contains("resource = \"YOUR_API\"")
            && !page.contains("<script>")
    );
    // The key page never shows the secret again; the admin API sees who owns the key.
    let page = alice
        .get(&format!("/console/keys/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains(&secret));
    let (_, view) = app
        .admin_call(Method::GET, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(view["owner_account"], alice_id.as_str());

    // A second key with the same name is refused, keeping the input.
    let r = create(&alice, &csrf_a, "Order sync <prod>", API, &["orders:read"]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let html = r.text().await.unwrap();
    assert!(by_id(&html, "name-error").contains("already"), "{html}");

    // Without the session's CSRF token nothing changes.
    for token in ["", "forged"] {
        let r = alice
            .post(&format!("/console/keys/{id}/disable"), &[("csrf", token)])
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(token_status(&app, &id, &secret).await, StatusCode::OK);

    // Another account sees none of it and can change none of it: 404, as for a key that does not exist.
    let (_, bob) = setup(&app, "bob@example.com", &["orders:read"]).await;
    let csrf_b = csrf(&bob).await;
    let list = bob.get("/console/keys").await.text().await.unwrap();
    assert!(!list.contains(&id), "{list}");
    assert_eq!(
        bob.get(&format!("/console/keys/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    for action in ["disable", "delete", "rotate"] {
        let r = bob
            .post(
                &format!("/console/keys/{id}/{action}"),
                &[("csrf", &csrf_b), ("overlap", "0")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{action}");
    }
    assert_eq!(token_status(&app, &id, &secret).await, StatusCode::OK);
    // Not signed in: to the login page, and back here after it.
    let stranger = Agent::new(&app);
    let r = stranger.get(&format!("/console/keys/{id}")).await;
    assert!(
        location(&r).starts_with("/login?next=%2Fconsole%2Fkeys%2F"),
        "{}",
        location(&r)
    );

    // Rotation with no overlap: the old secret stops at once, the new one works.
    let r = alice
        .post(
            &format!("/console/keys/{id}/rotate"),
            &[("csrf", &csrf_a), ("overlap", "0")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let new_secret = by_id(&r.text().await.unwrap(), "client-secret");
    assert_eq!(
        token_status(&app, &id, &secret).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(token_status(&app, &id, &new_secret).await, StatusCode::OK);

    // The owner disables and enables the key; once the operators take the scope away, it stays disabled.
    let toggle = async |action: &str| {
        alice
            .post(
                &format!("/console/keys/{id}/{action}"),
                &[("csrf", &csrf_a)],
            )
            .await
    };
    assert_eq!(toggle("disable").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(toggle("enable").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(token_status(&app, &id, &new_secret).await, StatusCode::OK);
    toggle("disable").await;
    let allow = async |scope: &str| {
        let (s, _) = app
            .admin_call(
                Method::PATCH,
                &format!("/accounts/{alice_id}"),
                Some(json!({"key_scopes": {API: [scope]}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    };
    allow("orders:write").await;
    let r = toggle("enable").await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("may no longer give"));
    assert_eq!(
        token_status(&app, &id, &new_secret).await,
        StatusCode::UNAUTHORIZED
    );
    allow("orders:read").await;
    assert_eq!(toggle("enable").await.status(), StatusCode::SEE_OTHER);

    // Disabling the account disables its keys (and re-enabling it does not enable them).
    let (s, _) = app
        .admin_call(
            Method::PATCH,
            &format!("/accounts/{alice_id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        token_status(&app, &id, &new_secret).await,
        StatusCode::UNAUTHORIZED
    );
    app.admin_call(
        Method::PATCH,
        &format!("/accounts/{alice_id}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(
        token_status(&app, &id, &new_secret).await,
        StatusCode::UNAUTHORIZED
    );
    let (_, view) = app
        .admin_call(Method::GET, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(view["enabled"], false);

    // Deleting the account deletes its keys, in memory too.
    let (s, _) = app
        .admin_call(Method::DELETE, &format!("/accounts/{alice_id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .admin_call(Method::GET, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        app.app
            .memory
            .registry
            .client(&app.app.store, &id)
            .await
            .unwrap()
            .is_none()
    );
});

both_engines!(key_allowances_are_checked_against_the_resources, |app| {
    app.resource(API, &["orders:read"]).await;
    let (s, body) = app
        .admin_call(
            Method::POST,
            "/accounts",
            Some(json!({"email": "c@example.com", "key_scopes": {API: ["orders:read", "orders:read"]}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["key_scopes"], json!({API: ["orders:read"]}));
    let id = body["account_id"].as_str().unwrap();
    for (bad, says) in [
        (json!({"https://nowhere.example": ["x"]}), "no resource"),
        (json!({API: ["orders:write"]}), "offers no scope"),
        (json!({API: "orders:read"}), "key_scopes"),
    ] {
        let (s, body) = app
            .admin_call(
                Method::PATCH,
                &format!("/accounts/{id}"),
                Some(json!({"key_scopes": bad})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error_description"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    // Without an allowance the console offers no form.
    let (s, _) = app
        .admin_call(
            Method::PATCH,
            &format!("/accounts/{id}"),
            Some(json!({"key_scopes": {}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .admin_call(
            Method::PATCH,
            &format!("/accounts/{id}"),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let agent = Agent::new(&app);
    agent.sign_in("c@example.com").await;
    let html = agent.get("/console/keys/new").await.text().await.unwrap();
    assert!(
        html.contains("id=\"no-allowance\"") && !html.contains("name=\"scope\""),
        "{html}"
    );
    let patch = async |body: Value| {
        let (s, b) = app
            .admin_call(Method::PATCH, &format!("/accounts/{id}"), Some(body))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    };
    patch(json!({"key_scopes": {API: ["orders:read"]}})).await;
    // An operator-made key may belong to an account, which must exist; its name is unique in that account.
    let spec = |owner: &str| json!({"name": "k", "resources": [API], "owner_account": owner});
    let (s, body) = app
        .admin_call(Method::POST, "/clients", Some(spec("acct_missing")))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, _) = app
        .admin_call(Method::POST, "/clients", Some(spec(id)))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, body) = app
        .admin_call(Method::POST, "/clients", Some(spec(id)))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    // No key for a disabled account; at most 50 per account, and the console says so above the form.
    patch(json!({"enabled": false})).await;
    let named =
        |n: usize| json!({"name": format!("k{n}"), "resources": [API], "owner_account": id});
    let (s, body) = app
        .admin_call(Method::POST, "/clients", Some(named(1)))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("disabled"),
        "{body}"
    );
    patch(json!({"enabled": true})).await;
    for n in 1..keyward::service::api_keys::MAX_KEYS_PER_ACCOUNT {
        let (s, body) = app
            .admin_call(Method::POST, "/clients", Some(named(n)))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let (s, body) = app
        .admin_call(Method::POST, "/clients", Some(named(99)))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("most keys"),
        "{body}"
    );
    let agent = Agent::new(&app);
    agent.sign_in("c@example.com").await;
    let csrf = csrf(&agent).await;
    let r = create(&agent, &csrf, "one more", API, &["orders:read"]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("id=\"form-error\""));
    // Two operator-made keys with no owner may share a name, as before.
    for _ in 0..2 {
        let (s, _) = app
            .admin_call(
                Method::POST,
                "/clients",
                Some(json!({"name": "shared", "resources": [API]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
});

both_engines!(usage_is_counted_in_memory_and_flushed, |app| {
    let (_, agent) = setup(&app, "u@example.com", &["orders:read"]).await;
    let csrf = csrf(&agent).await;
    let html = create(&agent, &csrf, "Busy", API, &["orders:read"])
        .await
        .text()
        .await
        .unwrap();
    let (id, secret) = (by_id(&html, "client-id"), by_id(&html, "client-secret"));

    // 250 tokens of an hour each in a row: more than ten times the 24 a day that one per lifetime needs.
    for _ in 0..250 {
        assert_eq!(token_status(&app, &id, &secret).await, StatusCode::OK);
    }
    // A client with no owner is not counted at all.
    let (other, other_secret) = app
        .client(json!({"name": "unowned", "resources": [API]}))
        .await;
    assert_eq!(
        token_status(&app, &other, &other_secret).await,
        StatusCode::OK
    );
    assert!(
        app.app
            .usage
            .pending_of(&other, app.instance(&other).await)
            .is_empty()
    );
    // A failed request is not a token.
    assert_eq!(
        token_status(&app, &id, "wrong").await,
        StatusCode::UNAUTHORIZED
    );
    // Nothing was written per token: the table is empty until the flush.
    let since = app.clock.now() - 7_200;
    assert!(
        app.app
            .store
            .usage_of(&id, app.instance(&id).await, since)
            .await
            .unwrap()
            .is_empty()
    );
    // The node's own unflushed counts are shown at once.
    let (_, usage) = app
        .admin_call(Method::GET, &format!("/clients/{id}/usage?hours=3"), None)
        .await;
    assert_eq!(usage["total"], 250, "{usage}");
    assert_eq!(usage["items"].as_array().unwrap().len(), 3);
    let page = agent.get("/console/usage").await.text().await.unwrap();
    assert!(page.contains("data-total=\"250\""), "{page}");
    assert!(page.contains("class=\"bar\""), "{page}");
    let key_page = agent
        .get(&format!("/console/keys/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        by_id(&key_page, "advice").contains("requested 250 tokens"),
        "{key_page}"
    );

    // The flush writes a row per client and hour (the admin client's tokens are counted too), and later counts
    // add to it; a flush with nothing new writes nothing.
    assert!(app.app.usage.flush(&app.app.store).await.unwrap() >= 1);
    let rows = app
        .app
        .store
        .usage_of(&id, app.instance(&id).await, since)
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.tokens).sum::<i64>(), 250);
    assert_eq!(app.app.usage.flush(&app.app.store).await.unwrap(), 0);
    assert_eq!(token_status(&app, &id, &secret).await, StatusCode::OK);
    app.app.usage.flush(&app.app.store).await.unwrap();
    let rows = app
        .app
        .store
        .usage_of(&id, app.instance(&id).await, since)
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.tokens).sum::<i64>(), 251);
    let (_, usage) = app
        .admin_call(Method::GET, &format!("/clients/{id}/usage"), None)
        .await;
    assert_eq!(usage["total"], 251, "{usage}");
    let (s, _) = app
        .admin_call(Method::GET, &format!("/clients/{id}/usage?hours=0"), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
});
