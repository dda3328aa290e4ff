//! The console in a real headless Chromium, as an account holder uses it: sign in, create an API key (its secret
//! shown once, the copy buttons revealed by the console's script under the page's CSP), get tokens with it,
//! rotate it with an overlap, disable and enable it, read its usage chart, make form mistakes, and delete it.
//! Screenshots go to `target/browser/console-*.png`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use keyward::service::accounts::AccountInput;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::browser::Browser;
use crate::harness::{TestApp, assert_error, claims};
use crate::oauth_agent::{PASSWORD, account_with};

const RESOURCE: &str = "https://api.shop.example";
const EMAIL: &str = "integrator@example.com";
const KEY_NAME: &str = "Order sync, production";

fn shot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join(format!("browser/{name}.png"))
}

both_engines!(chromium_creates_rotates_disables_and_deletes_a_key, |app| {
    console_in_browser(&app).await;
});

both_engines!(chromium_shows_the_operator_pages, |app| {
    operator_in_browser(&app).await;
});

/// An operator signs in, searches the accounts, rotates the signing keys and finds the rotation in the audit log;
/// screenshots of each page.
async fn operator_in_browser(app: &TestApp) {
    for (email, role) in [
        ("ops@example.com", "operator"),
        ("seller@example.com", "user"),
    ] {
        account_with(
            app,
            AccountInput {
                email: Some(email.into()),
                role: Some(role.into()),
                ..AccountInput::default()
            },
        )
        .await;
    }
    let browser = Browser::start().await;
    browser.goto(&app.url("/console/admin/accounts")).await;
    browser
        .find("input#email")
        .await
        .send_keys("ops@example.com")
        .await;
    browser
        .find("input#password")
        .await
        .send_keys(PASSWORD)
        .await;
    browser.find("button#sign-in").await.click().await;
    landed_on(&browser, "/console/admin/accounts").await;
    let search = browser.find("form.search input[name=q]").await;
    search.send_keys("seller").await;
    browser.find("form.search button").await.click().await;
    landed_on(&browser, "/console/admin/accounts?q=seller").await;
    let table = text_containing(&browser, "table", "seller@example.com").await;
    assert!(!table.contains("ops@example.com"), "{table}");
    browser.screenshot(shot("console-op-accounts")).await;

    browser.goto(&app.url("/console/admin/keys")).await;
    let before = app.app.admin.keys_list().len();
    browser
        .find("form[action=\"/console/admin/keys/rotate\"] button")
        .await
        .click()
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.app.admin.keys_list().len() == before {
        assert!(Instant::now() < deadline, "no key was added");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    landed_on(&browser, "/console/admin/keys").await;
    browser.screenshot(shot("console-op-keys")).await;

    browser
        .goto(&app.url("/console/admin/audit?q=keys.rotate"))
        .await;
    text_containing(&browser, "table", "keys.rotate").await;
    browser.screenshot(shot("console-op-audit")).await;
    browser.goto(&app.url("/console/admin/clients")).await;
    browser.screenshot(shot("console-op-clients")).await;
    browser.quit().await;
}

/// Waits up to 5 s for the text of the first element matching `css` to contain `needle` (a click that submits a
/// form may return before the next page replaced the current one, which has the same ids); returns the text.
async fn text_containing(browser: &Browser, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = browser.find(css).await.text().await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{css} on {} reads {text:?}, not containing {needle:?}",
            browser.current_url().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to 5 s for the current URL to end with `path`; returns it.
async fn landed_on(browser: &Browser, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let url = browser.current_url().await;
        if url.ends_with(path) {
            return url;
        }
        assert!(Instant::now() < deadline, "still on {url}, not on {path}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client credentials token request with Basic auth, as an integrator's server sends it.
async fn token(app: &TestApp, id: &str, secret: &str) -> reqwest::Response {
    app.http
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

/// A token request that must succeed; returns the token's claims.
async fn token_ok(app: &TestApp, id: &str, secret: &str) -> Value {
    let r = token(app, id, secret).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    claims(body["access_token"].as_str().unwrap())
}

/// A token request the server must refuse as `invalid_client`.
async fn token_refused(app: &TestApp, id: &str, secret: &str) {
    assert_error(
        token(app, id, secret).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
}

async fn console_in_browser(app: &TestApp) {
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/resources",
            Some(json!({
                "identifier": RESOURCE,
                "name": "Shop API",
                "scopes": ["orders:read", "orders:write"],
                "scope_details": {
                    "orders:read": {"description": "See orders", "category": "Orders", "access": "View Only"},
                    "orders:write": {"description": "Create and update orders", "category": "Orders", "access": "Full Access"}
                }
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    account_with(
        app,
        AccountInput {
            email: Some(EMAIL.into()),
            key_scopes: Some(BTreeMap::from([(
                RESOURCE.to_owned(),
                vec!["orders:read".to_owned(), "orders:write".to_owned()],
            )])),
            ..AccountInput::default()
        },
    )
    .await;

    let browser = Browser::start().await;

    // 1. Not signed in: the console sends the browser to the login page, which brings it back to the keys.
    browser.goto(&app.url("/console")).await;
    browser.find("input#email").await.send_keys(EMAIL).await;
    let url = browser.current_url().await;
    assert!(url.contains("/login"), "not on the login page: {url}");
    browser
        .find("input#password")
        .await
        .send_keys(PASSWORD)
        .await;
    browser.find("button#sign-in").await.click().await;
    landed_on(&browser, "/console/keys").await;
    assert_eq!(browser.find("h1").await.text().await, "API keys");
    browser.find("#no-keys").await;
    let page = browser.source().await;
    assert!(page.contains(EMAIL), "the frame names who is signed in");
    for link in ["/console/keys", "/console/usage", "/console/apps"] {
        browser.find(&format!("nav a[href=\"{link}\"]")).await;
    }
    assert!(
        !page.contains("/console/admin/"),
        "operator links on an account holder's page"
    );
    browser.screenshot(shot("console-keys-empty")).await;

    // 2. Create a key: the secret is shown once, with copy buttons the console's script reveals.
    browser.find("#create-key").await.click().await;
    landed_on(&browser, "/console/keys/new").await;
    let page = browser.source().await;
    assert!(page.contains("See orders"), "scope words on the form");
    assert!(page.contains("Create and update orders"));
    browser.find("#name").await.send_keys(KEY_NAME).await;
    // The only environment is chosen already.
    let env = browser.find("input[name=environment]").await;
    assert_eq!(env.attribute("value").await.as_deref(), Some(RESOURCE));
    assert!(
        env.attribute("checked").await.is_some(),
        "the only environment is preselected"
    );
    browser
        .find("input[name=scope][value=\"orders:read\"]")
        .await
        .click()
        .await;
    browser.find("#create").await.click().await;
    browser.find("#shown-once").await;
    let id = browser.find("#client-id").await.text().await;
    let first_secret = browser.find("#client-secret").await.text().await;
    assert!(!id.is_empty() && !first_secret.is_empty());
    assert_ne!(id, first_secret);
    let curl = browser.find("#curl-command").await.text().await;
    assert!(
        curl.contains(&first_secret) && curl.contains(RESOURCE),
        "{curl}"
    );
    // The buttons start hidden; /assets/console.js (allowed by the CSP) shows them.
    for target in ["client-id", "client-secret", "curl-command"] {
        let css = format!("button.copy[data-copy=\"{target}\"]");
        let deadline = Instant::now() + Duration::from_secs(5);
        while browser.find(&css).await.attribute("hidden").await.is_some() {
            assert!(
                Instant::now() < deadline,
                "the copy button of #{target} stayed hidden: console.js did not run"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    browser.screenshot(shot("console-key-created")).await;

    // 3. The key gets tokens over HTTP, with the scope ticked and nothing more.
    let mut issued = 0;
    for _ in 0..5 {
        let c = token_ok(app, &id, &first_secret).await;
        assert_eq!(c["client_id"], id.as_str());
        assert_eq!(c["scope"], "orders:read");
        assert_eq!(c["aud"], RESOURCE);
        issued += 1;
    }

    // 4. Rotate with an hour's overlap: the old and the new secret both work.
    browser.goto(&app.url(&format!("/console/keys/{id}"))).await;
    assert_eq!(browser.find("h1").await.text().await, KEY_NAME);
    assert_eq!(browser.find("#client-id").await.text().await, id);
    text_containing(&browser, "#status", "Active").await;
    // The key page's own chart already counts the tokens.
    let chart = browser.find("svg.usage-chart").await;
    assert_eq!(
        chart.attribute("data-total").await.as_deref(),
        Some(issued.to_string().as_str())
    );
    browser
        .find("#overlap option[value=\"3600\"]")
        .await
        .click()
        .await;
    browser.find("#rotate").await.click().await;
    browser.find("#shown-once").await;
    let second_secret = browser.find("#client-secret").await.text().await;
    assert_ne!(second_secret, first_secret);
    assert_eq!(browser.find("#client-id").await.text().await, id);
    let overlap = browser.find("p#overlap").await.text().await;
    assert!(overlap.contains("keep working until"), "{overlap}");
    browser.screenshot(shot("console-key-rotated")).await;
    for secret in [&first_secret, &second_secret] {
        let c = token_ok(app, &id, secret).await;
        assert_eq!(c["client_id"], id.as_str());
        issued += 1;
    }

    // 5. Disabled, neither secret gets a token; enabled again, they do.
    browser.goto(&app.url(&format!("/console/keys/{id}"))).await;
    let page = browser.source().await;
    assert!(
        page.contains("retires "),
        "the old secret's retirement is listed"
    );
    browser.find("#disable").await.click().await;
    browser.find("#enable").await;
    text_containing(&browser, "#status", "Disabled").await;
    landed_on(&browser, &format!("/console/keys/{id}")).await;
    for secret in [&first_secret, &second_secret] {
        token_refused(app, &id, secret).await;
    }
    browser.goto(&app.url("/console/keys")).await;
    text_containing(&browser, "#keys", "Disabled").await;
    browser.goto(&app.url(&format!("/console/keys/{id}"))).await;
    browser.find("#enable").await.click().await;
    browser.find("#disable").await;
    text_containing(&browser, "#status", "Active").await;
    token_ok(app, &id, &second_secret).await;
    issued += 1;
    browser.goto(&app.url(&format!("/console/keys/{id}"))).await;
    browser.find("svg.usage-chart").await;
    browser.screenshot(shot("console-key")).await;

    // The keys list on a phone.
    browser.goto(&app.url("/console/keys")).await;
    let list = text_containing(&browser, "#keys", KEY_NAME).await;
    assert!(list.contains(&id) && list.contains("Active"), "{list}");
    browser.set_window_size(390, 844).await;
    browser.screenshot(shot("console-keys-phone")).await;
    browser.set_window_size(1280, 900).await;

    // 6. The usage page, reached through the navigation: one chart with every token the key got.
    browser
        .find("nav a[href=\"/console/usage\"]")
        .await
        .click()
        .await;
    landed_on(&browser, "/console/usage").await;
    let chart = browser.find("svg.usage-chart").await;
    assert_eq!(
        chart.attribute("data-total").await.as_deref(),
        Some(issued.to_string().as_str()),
        "the chart counts the {issued} tokens issued"
    );
    browser.find("svg.usage-chart rect.bar").await;
    let heading = browser.find("section.usage h2").await.text().await;
    assert!(
        heading.contains(KEY_NAME) && heading.contains(&format!("{issued} tokens")),
        "{heading}"
    );
    assert!(
        !browser.source().await.contains("id=\"advice\""),
        "advice to cache after only {issued} tokens"
    );
    browser.screenshot(shot("console-usage")).await;

    // 7. Form mistakes: the form comes back with a message beside the name and what was chosen kept.
    browser.goto(&app.url("/console/keys/new")).await;
    browser
        .find("input[name=scope][value=\"orders:read\"]")
        .await
        .click()
        .await;
    browser.find("#create").await.click().await;
    let error = browser.find("#name-error").await.text().await;
    assert!(error.contains("Enter a name"), "{error}");
    assert_eq!(
        browser
            .find("#name")
            .await
            .attribute("aria-invalid")
            .await
            .as_deref(),
        Some("true")
    );
    let read = browser
        .find("input[name=scope][value=\"orders:read\"]")
        .await;
    assert!(
        read.attribute("checked").await.is_some(),
        "orders:read was unticked"
    );
    let write = browser
        .find("input[name=scope][value=\"orders:write\"]")
        .await;
    assert!(
        write.attribute("checked").await.is_none(),
        "orders:write was ticked"
    );
    browser.find("#name").await.send_keys(KEY_NAME).await;
    browser.find("#create").await.click().await;
    let error = text_containing(&browser, "#name-error", "already").await;
    assert!(error.contains("name"), "{error}");
    assert_eq!(
        browser
            .find("#name")
            .await
            .attribute("value")
            .await
            .as_deref(),
        Some(KEY_NAME)
    );
    let read = browser
        .find("input[name=scope][value=\"orders:read\"]")
        .await;
    assert!(
        read.attribute("checked").await.is_some(),
        "orders:read was unticked"
    );
    browser.screenshot(shot("console-form-error")).await;
    // Neither mistake made a key.
    browser.goto(&app.url("/console/keys")).await;
    let list = browser.find("#keys").await.text().await;
    assert_eq!(list.matches(KEY_NAME).count(), 1, "{list}");

    // 8. Delete after a confirmation: the key is gone from the list and its secrets get nothing.
    browser.goto(&app.url(&format!("/console/keys/{id}"))).await;
    browser.find("#delete").await.click().await;
    landed_on(&browser, &format!("/console/keys/{id}/delete")).await;
    let question = browser.find("h1").await.text().await;
    assert!(question.contains(KEY_NAME), "{question}");
    browser.find("#confirm-delete").await.click().await;
    browser.find("#no-keys").await;
    landed_on(&browser, "/console/keys").await;
    assert!(
        !browser.source().await.contains(&id),
        "the deleted key is listed"
    );
    browser.quit().await;
    for secret in [&first_secret, &second_secret] {
        token_refused(app, &id, secret).await;
    }
}
