//! Two hundred writers at once, of every kind that writes (refresh-token revocation, code redemption, refresh,
//! client creation, secret rotation, access-token revocation, disable, console key creation, consent), on both
//! engines: every request ends in success or its own correct error, none in a 5xx ("database is locked" on SQLite
//! was one), and afterwards every write that answered success is there.

use std::collections::BTreeMap;

use base64::Engine as _;
use keyward::service::accounts::AccountInput;
use keyward_core::grant::authorization_code::Authorization;
use keyward_core::scope::ScopeSet;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::TestApp;
use crate::oauth_agent::*;

/// What each concurrent request was, so its answer can be judged.
#[derive(Debug, Clone)]
enum Write {
    RevokeRefresh(String),
    Redeem(String, String),
    Refresh(String),
    /// A refresh racing the revocation of the same family.
    RefreshRacingRevoke(String),
    CreateClient(String),
    Rotate(String),
    RevokeAccess(String),
    Disable(String),
    ConsoleKey(String),
    Consent,
}

/// A code of the fixture app for the fixture account, issued through the server's own method (the consent flow
/// itself is tested elsewhere); returns (code, verifier).
async fn code(app: &TestApp, f: &Fixture) -> (String, String) {
    let p = pkce();
    let auth = Authorization {
        client_id: f.id.clone(),
        redirect_uri: REDIRECT.into(),
        state: None,
        scope: ScopeSet::parse(SCOPE).unwrap(),
        audience: API.into(),
        code_challenge: base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(keyward::crypto::sha256(p.verifier.as_bytes())),
        consent_may_be_remembered: true,
    };
    (
        app.app
            .delegated
            .issue_code(&auth, &f.account)
            .await
            .unwrap(),
        p.verifier,
    )
}

/// A grant's first (access, refresh) pair.
async fn grant(app: &TestApp, f: &Fixture) -> (String, String) {
    let (c, v) = code(app, f).await;
    let (access, refresh, _) = tokens(redeem(app, f.basic(), &c, &v).await).await;
    (access, refresh)
}

both_engines!(two_hundred_concurrent_writers_lose_nothing, |app| {
    let f = fixture(&app).await;
    let token = app.admin_token().await;
    let basic = Some((f.id.as_str(), f.secret.as_str()));

    // What the writers act on, made one at a time beforehand.
    let mut writes = Vec::new();
    let mut families = Vec::new();
    for _ in 0..25 {
        let (_, refresh) = grant(&app, &f).await;
        writes.push(Write::RevokeRefresh(refresh));
    }
    for _ in 0..25 {
        let (c, v) = code(&app, &f).await;
        writes.push(Write::Redeem(c, v));
    }
    for _ in 0..20 {
        let (_, refresh) = grant(&app, &f).await;
        writes.push(Write::Refresh(refresh));
    }
    for _ in 0..10 {
        let (access, refresh) = grant(&app, &f).await;
        writes.push(Write::RefreshRacingRevoke(refresh.clone()));
        writes.push(Write::RevokeRefresh(refresh.clone()));
        families.push((access, refresh));
    }
    for i in 0..20 {
        writes.push(Write::CreateClient(format!("writer-{i}")));
    }
    let mut rotated = Vec::new();
    for i in 0..5 {
        let (id, _) = app
            .client(json!({"name": format!("rotated-{i}"), "resources": [API], "scopes": ["orders:read"]}))
            .await;
        for _ in 0..4 {
            writes.push(Write::Rotate(id.clone()));
        }
        rotated.push(id);
    }
    for _ in 0..20 {
        let (access, _) = grant(&app, &f).await;
        writes.push(Write::RevokeAccess(access));
    }
    let mut disabled = Vec::new();
    for i in 0..20 {
        let (id, _) = app
            .client(json!({"name": format!("disabled-{i}"), "resources": [API], "scopes": ["orders:read"]}))
            .await;
        writes.push(Write::Disable(id.clone()));
        disabled.push(id);
    }
    account_with(
        &app,
        AccountInput {
            email: Some("keys@example.com".into()),
            key_scopes: Some(BTreeMap::from([(
                API.to_owned(),
                vec!["orders:read".into()],
            )])),
            ..AccountInput::default()
        },
    )
    .await;
    let console = Agent::new(&app);
    console.sign_in("keys@example.com").await;
    let console_csrf = hidden(
        &console.get("/console/keys").await.text().await.unwrap(),
        "csrf",
    );
    for i in 0..20 {
        writes.push(Write::ConsoleKey(format!("key-{i}")));
    }
    let consenting = Agent::new(&app);
    let p = pkce();
    let consent_html = consent_page(
        consenting
            .authorize(&request(&f.id, &p.challenge, "c"), EMAIL)
            .await,
    )
    .await;
    for _ in 0..10 {
        writes.push(Write::Consent);
    }
    assert_eq!(writes.len(), 200);

    // All at once.
    let send = |w: Write| {
        let (app, f, token, consent_html, console, consenting, console_csrf) = (
            &app,
            &f,
            &token,
            &consent_html,
            &console,
            &consenting,
            &console_csrf,
        );
        async move {
            let admin = |method: Method, path: String, body: Option<Value>| {
                let mut req = app
                    .http
                    .request(method, app.url(&format!("/admin/v1{path}")))
                    .bearer_auth(token);
                if let Some(b) = body {
                    req = req.json(&b);
                }
                req.send()
            };
            let r: Response = match &w {
                Write::RevokeRefresh(t) => {
                    app.post_form("/oauth2/revoke", basic, &[("token", t)])
                        .await
                }
                Write::Redeem(c, v) => redeem(app, f.basic(), c, v).await,
                Write::Refresh(t) | Write::RefreshRacingRevoke(t) => {
                    refresh(app, f.basic(), t, None).await
                }
                Write::CreateClient(name) => admin(
                    Method::POST,
                    "/clients".into(),
                    Some(json!({"name": name, "resources": [API], "scopes": ["orders:read"]})),
                )
                .await
                .unwrap(),
                Write::Rotate(id) => admin(Method::POST, format!("/clients/{id}/secrets"), None)
                    .await
                    .unwrap(),
                Write::RevokeAccess(t) => {
                    app.post_form("/oauth2/revoke", basic, &[("token", t)])
                        .await
                }
                Write::Disable(id) => admin(Method::POST, format!("/clients/{id}/disable"), None)
                    .await
                    .unwrap(),
                Write::ConsoleKey(name) => {
                    console
                        .post(
                            "/console/keys",
                            &[
                                ("csrf", console_csrf),
                                ("name", name),
                                ("environment", API),
                                ("scope", "orders:read"),
                            ],
                        )
                        .await
                }
                Write::Consent => consenting.decide(consent_html, "allow").await,
            };
            let status = r.status();
            let headers = r.headers().clone();
            let body = r.text().await.unwrap_or_default();
            (w, status, headers, body)
        }
    };
    let results = futures_util::future::join_all(writes.into_iter().map(send)).await;

    // Every answer is a success or the one correct refusal.
    let mut created = Vec::new();
    let mut secrets_added = BTreeMap::<String, usize>::new();
    let mut racing_wins = 0;
    for (w, status, headers, body) in &results {
        let error = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        let ok = match w {
            Write::RevokeRefresh(_) | Write::RevokeAccess(_) => status == &StatusCode::OK,
            Write::Redeem(..) | Write::Refresh(_) => status == &StatusCode::OK,
            Write::RefreshRacingRevoke(_) => {
                racing_wins += usize::from(status == &StatusCode::OK);
                status == &StatusCode::OK
                    || (status == &StatusCode::BAD_REQUEST
                        && error.as_deref() == Some("invalid_grant"))
            }
            Write::CreateClient(_) => {
                let v: Value = serde_json::from_str(body).unwrap_or_default();
                created.push(v["client_id"].as_str().unwrap_or_default().to_owned());
                status == &StatusCode::CREATED
            }
            Write::Rotate(id) => {
                *secrets_added.entry(id.clone()).or_default() += 1;
                status == &StatusCode::CREATED
            }
            Write::Disable(_) => status == &StatusCode::OK,
            // The page that shows the new key's secret once.
            Write::ConsoleKey(_) => status == &StatusCode::CREATED && body.contains("kw_sk_"),
            Write::Consent => {
                status == &StatusCode::SEE_OTHER
                    && headers
                        .get("location")
                        .is_some_and(|l| l.to_str().unwrap().contains("code="))
            }
        };
        assert!(ok, "{w:?} answered {status}: {body}");
    }
    eprintln!("refreshes that won their race with a revocation: {racing_wins} of 10");

    // Nothing that answered success is missing.
    for id in &created {
        let (s, body) = app
            .admin_call(Method::GET, &format!("/clients/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "created client {id}: {body}");
    }
    for (id, added) in &secrets_added {
        let (_, body) = app
            .admin_call(Method::GET, &format!("/clients/{id}/secrets"), None)
            .await;
        let items = body["items"].as_array().or(body.as_array()).cloned();
        assert_eq!(items.unwrap_or_default().len(), 1 + added, "{id}: {body}");
    }
    for id in &disabled {
        let (_, body) = app
            .admin_call(Method::GET, &format!("/clients/{id}"), None)
            .await;
        assert_eq!(body["enabled"], false, "{id}");
    }
    let keys = console.get("/console/keys").await.text().await.unwrap();
    for i in 0..20 {
        assert!(
            keys.contains(&format!("key-{i}<")),
            "console key key-{i} missing"
        );
    }
    for (w, ..) in &results {
        match w {
            Write::RevokeRefresh(t) => {
                let r = refresh(&app, f.basic(), t, None).await;
                assert_eq!(
                    r.status(),
                    StatusCode::BAD_REQUEST,
                    "revoked refresh token works"
                );
            }
            Write::RevokeAccess(t) => assert!(!active(&app, &f, t).await, "revoked token active"),
            _ => {}
        }
    }
    // Whichever came first, a family whose refresh token was revoked is gone whole.
    for (access, _) in &families {
        assert!(
            !active(&app, &f, access).await,
            "a revoked family's token is active"
        );
    }
});
