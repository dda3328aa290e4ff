//! The console's keys without a secret, over HTTP with a cookie-keeping client: a public-key key made by pasting a
//! JWK gets tokens with `private_key_jwt` assertions signed by the matching private key, rotates (a second key
//! added, the first removed; the last one never), is disabled and counted like a secret key; a federated key made
//! through the form gets tokens for a test issuer's platform tokens; and a key of any kind can require DPoP, after
//! which a token request without a proof is refused. The browser's side (PEM, key pairs) is in
//! `console_keys_browser.rs`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::client_assertions::{claims as assertion_claims, with_assertion};
use crate::console::{API, by_id, csrf, setup};
use crate::dpop_issue::proof;
use crate::federation::{Issuer, exchange};
use crate::harness::{Engine, TestApp, assert_error, claims};
use crate::jws::TestKey;
use crate::oauth_agent::{Agent, unescape};
use crate::tls::TestCa;

/// Posts the create form for a key of `kind` with `fields` besides name, environment and scope.
async fn create(
    agent: &Agent,
    csrf: &str,
    name: &str,
    kind: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("csrf", csrf),
        ("name", name),
        ("environment", API),
        ("scope", "orders:read"),
        ("kind", kind),
    ];
    form.extend_from_slice(fields);
    agent.post("/console/keys", &form).await
}

/// A token request authenticated by an assertion `key` signs under `kid`.
async fn signed(app: &TestApp, id: &str, key: &TestKey, kid: &str) -> reqwest::Response {
    let assertion = key.jws(
        json!({ "kid": kid }),
        &assertion_claims(app, id, &app.url("/oauth2/token")),
    );
    with_assertion(
        app,
        "/oauth2/token",
        &assertion,
        None,
        &[("grant_type", "client_credentials")],
    )
    .await
}

async fn signed_ok(app: &TestApp, id: &str, key: &TestKey, kid: &str) -> Value {
    let r = signed(app, id, key, kid).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    claims(body["access_token"].as_str().unwrap())
}

async fn signed_refused(app: &TestApp, id: &str, key: &TestKey, kid: &str) {
    assert_error(
        signed(app, id, key, kid).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
}

/// The key page's HTML.
async fn key_page(agent: &Agent, id: &str) -> String {
    let r = agent.get(&format!("/console/keys/{id}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

/// Posts one of the key page's forms; returns the response.
async fn post_key(
    agent: &Agent,
    csrf: &str,
    id: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("csrf", csrf)];
    form.extend_from_slice(fields);
    agent
        .post(&format!("/console/keys/{id}/{action}"), &form)
        .await
}

/// The location a form's answer sends the browser to, which must be the key's page.
fn back_to_key(r: &reqwest::Response, id: &str) {
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/console/keys/{id}")
    );
}

both_engines!(a_public_key_key_is_pasted_rotated_and_disabled, |app| {
    let (account, agent) = setup(&app, "keys@example.com", &["orders:read"]).await;
    let csrf = csrf(&agent).await;

    // The form offers the three kinds and DPoP.
    let form = agent.get("/console/keys/new").await.text().await.unwrap();
    for id in [
        "kind-secret",
        "kind-public-key",
        "kind-federated",
        "jwk",
        "issuer",
        "dpop",
    ] {
        assert!(form.contains(&format!("id=\"{id}\"")), "no #{id}: {form}");
    }
    assert!(
        form.contains("token.actions.githubusercontent.com")
            && form.contains("system:serviceaccount:")
    );

    // Mistakes come back beside the field, with what was typed.
    let private = TestKey::es256();
    let mut with_d = private.bare_jwk();
    with_d["d"] = json!("AAAA");
    for (text, says) in [
        (with_d.to_string(), "private key"),
        (
            "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----".into(),
            "PEM",
        ),
        ("{\"kty\": \"oct\"}".into(), "P-256"),
        (
            json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "k"}).to_string(),
            "Key \"k\"",
        ),
    ] {
        let r = create(
            &agent,
            &csrf,
            "Signed sync",
            "public_key",
            &[("jwk", &text)],
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{text}");
        let html = r.text().await.unwrap();
        let error = by_id(&html, "jwk-error");
        assert!(error.contains(says), "{text}: {error}");
        assert!(html.contains("value=\"Signed sync\""), "{html}");
        assert!(
            html.contains("id=\"kind-public-key\" value=\"public_key\" checked"),
            "{html}"
        );
    }
    assert!(
        app.app.api_keys.keys_of(&account).await.unwrap().is_empty(),
        "a refused key was made"
    );

    // Pasted without a kid: the key's RFC 7638 thumbprint is its kid, and no secret is made or shown.
    let jwk = private.bare_jwk();
    let kid = keyward_client::dpop::thumbprint(&jwk).unwrap();
    let r = create(
        &agent,
        &csrf,
        "Signed sync",
        "public_key",
        &[("jwk", &jwk.to_string())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let html = r.text().await.unwrap();
    let id = by_id(&html, "client-id");
    assert!(
        html.contains(&kid) && !html.contains("client-secret"),
        "{html}"
    );
    let config = unescape(&by_id(&html, "agent-config"));
    assert!(
        config.contains(&format!("key_id = \"{kid}\"")) && config.contains("private_key_file"),
        "{config}"
    );
    let (_, view) = app
        .admin_call(Method::GET, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(
        view["token_endpoint_auth_method"], "private_key_jwt",
        "{view}"
    );
    assert_eq!(view["secrets"], json!([]), "{view}");
    assert_eq!(view["jwks"]["keys"][0]["alg"], "ES256");
    assert_eq!(view["jwks_uri"], Value::Null);

    // The matching private key signs assertions that get tokens, with the scope chosen.
    let c = signed_ok(&app, &id, &private, &kid).await;
    assert_eq!(
        (c["client_id"].as_str(), c["scope"].as_str()),
        (Some(id.as_str()), Some("orders:read"))
    );
    signed_refused(&app, &id, &TestKey::es256(), &kid).await;

    // The key page: its kind and public keys; no secrets, no secret rotation.
    let page = key_page(&agent, &id).await;
    assert!(by_id(&page, "kind").contains("Public key"), "{page}");
    assert!(
        page.contains("id=\"public-keys\"") && page.contains(&kid),
        "{page}"
    );
    assert!(
        !page.contains("id=\"secrets\"") && !page.contains("/rotate\""),
        "{page}"
    );
    assert!(!page.contains("id=\"federated\""), "{page}");

    // The last key cannot be removed.
    let r = post_key(&agent, &csrf, &id, "public-keys/remove", &[("kid", &kid)]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let html = unescape(&r.text().await.unwrap());
    assert!(
        html.contains("only public key") && html.contains("Add its replacement first"),
        "{html}"
    );

    // Rotation: a second key (RSA with PS256, its own kid) is added; both work; the first is removed.
    let next = TestKey::ps256();
    let r = post_key(
        &agent,
        &csrf,
        &id,
        "public-keys",
        &[("jwk", &next.jwk("second").to_string())],
    )
    .await;
    back_to_key(&r, &id);
    let r = post_key(
        &agent,
        &csrf,
        &id,
        "public-keys",
        &[("jwk", &next.jwk("second").to_string())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "the same kid twice");
    let r = post_key(
        &agent,
        &csrf,
        &id,
        "public-keys",
        &[("jwk", &with_d.to_string())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a private key");
    signed_ok(&app, &id, &private, &kid).await;
    signed_ok(&app, &id, &next, "second").await;
    let r = post_key(&agent, &csrf, &id, "public-keys/remove", &[("kid", &kid)]).await;
    back_to_key(&r, &id);
    signed_refused(&app, &id, &private, &kid).await;
    let c = signed_ok(&app, &id, &next, "second").await;
    // Two tabs adding keys at once: each add either lands or is refused as a change made meanwhile (409), and
    // every add that was answered with success is in the key's set afterwards: none is lost.
    let extra: Vec<(String, String)> = (0..6)
        .map(|i| {
            (
                format!("race-{i}"),
                TestKey::es256().jwk(&format!("race-{i}")).to_string(),
            )
        })
        .collect();
    let fields: Vec<[(&str, &str); 1]> = extra
        .iter()
        .map(|(_, jwk)| [("jwk", jwk.as_str())])
        .collect();
    let adds = fields
        .iter()
        .map(|f| post_key(&agent, &csrf, &id, "public-keys", f));
    let answers = futures_util::future::join_all(adds).await;
    let (_, client) = app
        .admin_call(reqwest::Method::GET, &format!("/clients/{id}"), None)
        .await;
    let kids: Vec<&str> = client["jwks"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    let mut landed = 0;
    for ((kid, _), r) in extra.iter().zip(&answers) {
        match r.status() {
            StatusCode::SEE_OTHER => {
                landed += 1;
                assert!(
                    kids.contains(&kid.as_str()),
                    "{kid} was added but is gone: {kids:?}"
                );
            }
            StatusCode::CONFLICT => assert!(!kids.contains(&kid.as_str()), "{kid}"),
            other => panic!("{kid}: {other}"),
        }
    }
    assert!(landed >= 1);
    assert_eq!(kids.len(), 1 + landed, "{kids:?}");
    assert_eq!(c["client_id"], id.as_str());
    let page = key_page(&agent, &id).await;
    assert!(page.contains("second") && !page.contains(&kid), "{page}");

    // Disabled, it gets nothing; enabled, it does.
    back_to_key(&post_key(&agent, &csrf, &id, "disable", &[]).await, &id);
    signed_refused(&app, &id, &next, "second").await;
    back_to_key(&post_key(&agent, &csrf, &id, "enable", &[]).await, &id);
    signed_ok(&app, &id, &next, "second").await;

    // Usage counts its tokens like a secret key's: 5 issued so far.
    let page = key_page(&agent, &id).await;
    assert!(page.contains("data-total=\"5\""), "{page}");
    // Its last use is the chart's latest hour with tokens (uses are recorded per secret, and it has none).
    assert!(page.contains(" UTC (hour)"), "{page}");
    let list = agent.get("/console/keys").await.text().await.unwrap();
    assert!(
        list.contains("see its usage") && list.contains("Public key"),
        "{list}"
    );
    // The audit log has the console's changes, by the account.
    let (_, audit) = app.admin_call(Method::GET, "/audit?limit=20", None).await;
    let updates = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"] == "client.update"
                && e["target"] == id.as_str()
                && e["actor"] == format!("account:{account}")
        })
        .count();
    assert_eq!(
        updates,
        4 + landed,
        "add, remove, the adds that landed in the race, disable, enable: {audit}"
    );

    // A secret key's page shows no public-key or federated forms.
    let r = crate::console::create(&agent, &csrf, "Secret sync", API, &["orders:read"]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let secret_id = by_id(&r.text().await.unwrap(), "client-id");
    let page = key_page(&agent, &secret_id).await;
    assert!(
        page.contains("id=\"secrets\"") && page.contains("/rotate\""),
        "{page}"
    );
    assert!(
        !page.contains("id=\"add-public-key\"") && !page.contains("id=\"add-federated\""),
        "{page}"
    );
    let r = post_key(
        &agent,
        &csrf,
        &secret_id,
        "public-keys",
        &[("jwk", &next.jwk("x").to_string())],
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "a public key added to a secret key"
    );
    // Another account's forms cannot touch the key.
    let (_, mallory) = setup(&app, "mallory@example.com", &["orders:read"]).await;
    let mcsrf = crate::console::csrf(&mallory).await;
    let r = post_key(
        &mallory,
        &mcsrf,
        &id,
        "public-keys/remove",
        &[("kid", "second")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
});

both_engines!(dpop_can_be_required_on_a_key_of_any_kind, |app| {
    let (_, agent) = setup(&app, "bound@example.com", &["orders:read"]).await;
    let csrf = csrf(&agent).await;
    let url = app.url("/oauth2/token");

    // A secret key made with DPoP required: without a proof, refused; with one, a DPoP token.
    let r = create(&agent, &csrf, "Bound secret", "secret", &[("dpop", "on")]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let html = r.text().await.unwrap();
    let (id, secret) = (by_id(&html, "client-id"), by_id(&html, "client-secret"));
    assert!(html.contains("id=\"dpop-required\""), "{html}");
    assert_error(
        app.token(&id, &secret, &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    )
    .await;
    let holder = TestKey::es256();
    let r = app
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .header(
            "DPoP",
            proof(&holder, "POST", &url, app.clock.now(), json!({})),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let page = key_page(&agent, &id).await;
    assert!(
        by_id(&page, "dpop-status").starts_with("Required"),
        "{page}"
    );
    // Turned off on the key page: a Bearer token again.
    back_to_key(&post_key(&agent, &csrf, &id, "dpop", &[]).await, &id);
    assert_eq!(app.token(&id, &secret, &[]).await.status(), StatusCode::OK);
    back_to_key(
        &post_key(&agent, &csrf, &id, "dpop", &[("dpop", "on")]).await,
        &id,
    );
    assert_error(
        app.token(&id, &secret, &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    )
    .await;

    // A public-key key with DPoP required: the assertion alone is not enough.
    let key = TestKey::eddsa();
    let r = create(
        &agent,
        &csrf,
        "Bound signer",
        "public_key",
        &[("jwk", &key.jwk("ed").to_string()), ("dpop", "on")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = by_id(&r.text().await.unwrap(), "client-id");
    assert_error(
        signed(&app, &id, &key, "ed").await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    )
    .await;
    let (_, view) = app
        .admin_call(Method::GET, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(view["dpop_bound_access_tokens"], true, "{view}");
});

/// Posts the create form for a federated key trusting `issuer`'s tokens for `kw-test` under `conditions`.
async fn create_federated(
    agent: &Agent,
    csrf: &str,
    issuer: &str,
    conditions: &str,
) -> reqwest::Response {
    let fields = [
        ("issuer", issuer),
        ("audience", "kw-test"),
        ("conditions", conditions),
    ];
    create(agent, csrf, "Deploys", "federated", &fields).await
}

async fn a_federated_key_is_made_in_the_console(engine: Engine) {
    let ca = TestCa::new();
    let issuer = Issuer::start(&ca, None).await;
    let ca_file = ca.pem_file.to_string_lossy().into_owned();
    let app = TestApp::with_env(
        engine,
        &[
            ("KEYWARD_EXTRA_CA_FILE", &ca_file),
            crate::tls::ALLOW_LOOPBACK,
        ],
    )
    .await;
    let (_, agent) = setup(&app, "ci@example.com", &["orders:read"]).await;
    let csrf = csrf(&agent).await;
    // No condition at all: refused beside the credential's fields, which keep what was typed.
    let r = create_federated(&agent, &csrf, &issuer.url, "").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(
        by_id(&html, "federated-error").contains("subject or at least one claim"),
        "{html}"
    );
    assert!(
        html.contains(&format!("value=\"{}\"", issuer.url)),
        "{html}"
    );
    let r = create_federated(
        &agent,
        &csrf,
        "http://plain.example",
        "repository=acme/shop",
    )
    .await;
    let error = by_id(&r.text().await.unwrap(), "federated-error");
    assert_eq!(error, "Issuer must be an https URL.");

    let r = create_federated(
        &agent,
        &csrf,
        &issuer.url,
        "repository=acme/shop\nref=refs/heads/main",
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let html = r.text().await.unwrap();
    let id = by_id(&html, "client-id");
    assert!(by_id(&html, "kind").contains("Federated"), "{html}");
    let (_, view) = app
        .admin_call(Method::GET, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(view["secrets"], json!([]), "{view}");
    assert_eq!(
        view["federated_credentials"],
        json!([{"name": "credential-1", "issuer": issuer.url, "audience": "kw-test",
                "claims": {"ref": "refs/heads/main", "repository": "acme/shop"}}])
    );

    // The platform's token gets a token; one from another repository does not.
    let now = app.clock.now();
    let r = exchange(&app, &id, &issuer.token(now, json!({}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = exchange(
        &app,
        &id,
        &issuer.token(now, json!({"repository": "acme/other"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A second credential (another branch, by subject) added, the first removed; the last stays.
    let page = key_page(&agent, &id).await;
    assert!(
        page.contains("id=\"federated\"") && page.contains("repository=acme/shop"),
        "{page}"
    );
    assert!(
        !page.contains("id=\"secrets\"") && !page.contains("id=\"public-keys\""),
        "{page}"
    );
    let sub = "repo:acme/shop:ref:refs/heads/release";
    let r = post_key(
        &agent,
        &csrf,
        &id,
        "federated",
        &[
            ("issuer", &issuer.url),
            ("audience", "kw-test"),
            ("subject", sub),
            ("credential_name", "release"),
        ],
    )
    .await;
    back_to_key(&r, &id);
    let r = post_key(
        &agent,
        &csrf,
        &id,
        "federated/remove",
        &[("name", "credential-1")],
    )
    .await;
    back_to_key(&r, &id);
    let now = app.clock.now();
    let r = exchange(&app, &id, &issuer.token(now, json!({}))).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the removed credential still works"
    );
    let r = exchange(&app, &id, &issuer.token(now, json!({"sub": sub}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = post_key(
        &agent,
        &csrf,
        &id,
        "federated/remove",
        &[("name", "release")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(unescape(&r.text().await.unwrap()).contains("only federated credential"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_key_is_made_in_the_console_sqlite() {
    a_federated_key_is_made_in_the_console(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_key_is_made_in_the_console_postgres() {
    a_federated_key_is_made_in_the_console(Engine::Postgres).await;
}
