//! Delegated access through real HTTP, as a browser and an app would drive it: the authorization request with PKCE
//! S256, login, the consent screen, the code at the redirect URI, its redemption, refresh-token rotation and family
//! revocation, remembered and withdrawn consent, redirect URI near misses, `state` round trips, public clients, CSRF
//! and the pages' headers and cookies, and failed-login throttling.

use crate::both_engines;
use crate::harness::{assert_error, claims};
use crate::oauth_agent::*;
use keyward_core::form::encode_component;
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;

both_engines!(
    full_flow_code_token_refresh_rotation_and_family_revocation,
    |app| {
        let f = fixture(&app).await;
        let agent = Agent::new(&app);
        let p = pkce();
        let params = request(&f.id, &p.challenge, "st-1");

        // Not signed in: the login page, then the consent screen naming the app and the scopes in plain words.
        let r = agent.authorize(&params, EMAIL).await;
        let html = consent_page(r).await;
        for shown in [
            "Shop app",
            "Syncs your orders with the shop",
            "See your orders",
            "Change your orders",
            "Orders API",
            EMAIL,
            "app.example",
        ] {
            assert!(html.contains(shown), "{shown} missing from {html}");
        }
        let to = location(&agent.decide(&html, "allow").await);
        let code = code_of(&app, &to, &params);

        // The code for tokens: the access token is the account's, for the app, verifiable against the JWKS.
        let (access0, refresh0, body) =
            tokens(redeem(&app, f.basic(), &code, &p.verifier).await).await;
        assert_eq!(body["scope"], SCOPE);
        assert_eq!(body["expires_in"], 900);
        let c = app.verify_jwt(&access0, API).await;
        assert_eq!(c["sub"], f.account.as_str());
        assert_eq!(c["client_id"], f.id.as_str());
        assert_eq!(c["aud"], API);
        assert_eq!(c["scope"], SCOPE);
        assert_eq!(c["iss"], app.app.settings.issuer.as_str());
        assert!(active(&app, &f, &access0).await);

        // Widening at refresh is refused, and the refresh token stays usable.
        let r = refresh(&app, f.basic(), &refresh0, Some("orders:read orders:admin")).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_scope").await;

        // Narrowing works; the refresh token rotates.
        let (access1, refresh1, body) =
            tokens(refresh(&app, f.basic(), &refresh0, Some("orders:read")).await).await;
        assert_eq!(body["scope"], "orders:read");
        assert_eq!(claims(&access1)["scope"], "orders:read");
        assert_eq!(claims(&access1)["sub"], f.account.as_str());
        assert_ne!(refresh1, refresh0);

        // The rotated token still holds the grant's full scope.
        let (access2, refresh2, body) =
            tokens(refresh(&app, f.basic(), &refresh1, None).await).await;
        assert_eq!(body["scope"], SCOPE);
        assert_ne!(refresh2, refresh1);
        assert!(active(&app, &f, &access2).await);

        // The first refresh token again: refused, and the whole family goes.
        let r = refresh(&app, f.basic(), &refresh0, None).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
        let r = refresh(&app, f.basic(), &refresh2, None).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
        for (n, t) in [&access0, &access1, &access2].into_iter().enumerate() {
            assert!(!active(&app, &f, t).await, "access token {n} still active");
        }
    }
);

both_engines!(consent_remembered_deny_and_withdrawal, |app| {
    let f = fixture(&app).await;
    let agent = Agent::new(&app);

    // Deny: back to the app with access_denied and the state; nothing is remembered.
    let p = pkce();
    let html = consent_page(
        agent
            .authorize(&request(&f.id, &p.challenge, "no-1"), EMAIL)
            .await,
    )
    .await;
    let to = location(&agent.decide(&html, "deny").await);
    assert_eq!(error_of(&app, &to, "no-1"), "access_denied");
    let r = agent
        .authorize(&request(&f.id, &p.challenge, "no-2"), EMAIL)
        .await;
    let html = consent_page(r).await;

    // Allow once, then the same request (or a narrower one) gets a code at once.
    let to = location(&agent.decide(&html, "allow").await);
    code_of(&app, &to, &request(&f.id, &p.challenge, "no-2"));
    let p2 = pkce();
    let params = request(&f.id, &p2.challenge, "again");
    let r = agent.authorize(&params, EMAIL).await;
    let code = code_of(&app, &location(&r), &params);
    let (access, refresh_token, _) =
        tokens(redeem(&app, f.basic(), &code, &p2.verifier).await).await;
    let narrower = with(params.clone(), "scope", Some("orders:read"));
    code_of(
        &app,
        &location(&agent.authorize(&narrower, EMAIL).await),
        &narrower,
    );
    // A scope beyond what was agreed asks again.
    let wider = with(params.clone(), "scope", Some("orders:read orders:admin"));
    consent_page(agent.authorize(&wider, EMAIL).await).await;

    // The console lists the app (the old account page leads there); revoking it withdraws consent and what the
    // app holds.
    assert_eq!(location(&agent.get("/account").await), "/console/apps");
    let page = agent.get("/console/apps").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_page_headers(page.headers(), "authorized apps page");
    let html = page.text().await.unwrap();
    assert!(html.contains("Shop app") && html.contains(&f.id), "{html}");
    let csrf = hidden(&html, "csrf");
    let r = agent
        .post(
            "/console/apps/revoke",
            &[("csrf", &csrf), ("client_id", &f.id)],
        )
        .await;
    assert_eq!(location(&r), "/console/apps");
    let html = agent.get("/console/apps").await.text().await.unwrap();
    assert!(
        html.contains("id=\"no-apps\"") && !html.contains(&f.id),
        "{html}"
    );

    let r = refresh(&app, f.basic(), &refresh_token, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(!active(&app, &f, &access).await);
    consent_page(agent.authorize(&params, EMAIL).await).await;
});

both_engines!(
    code_replay_revokes_and_concurrent_redemptions_have_one_winner,
    |app| {
        let f = fixture(&app).await;
        let agent = Agent::new(&app);

        // Redeemed twice: the second is refused and what the first issued is revoked.
        let p = pkce();
        let code = agent
            .code(&app, &request(&f.id, &p.challenge, "s"), EMAIL)
            .await;
        let (access, refresh_token, _) =
            tokens(redeem(&app, f.basic(), &code, &p.verifier).await).await;
        assert!(active(&app, &f, &access).await);
        let r = redeem(&app, f.basic(), &code, &p.verifier).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert!(!active(&app, &f, &access).await);
        let r = refresh(&app, f.basic(), &refresh_token, None).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;

        // Twenty redemptions of one code at once: exactly one wins.
        let p = pkce();
        let code = agent
            .code(&app, &request(&f.id, &p.challenge, "s"), EMAIL)
            .await;
        let rs = futures_util::future::join_all(
            (0..20).map(|_| redeem(&app, f.basic(), &code, &p.verifier)),
        )
        .await;
        exactly_one_winner(&outcomes(rs).await);
    }
);

both_engines!(code_binding_expiry_and_pkce, |app| {
    let f = fixture(&app).await;
    let (other, other_secret) = app.client(app_spec("Other app", &[REDIRECT])).await;
    let agent = Agent::new(&app);
    agent.sign_in(EMAIL).await;

    // Another client cannot redeem the code, even with the right verifier and redirect URI.
    let p = pkce();
    let code = agent
        .code(&app, &request(&f.id, &p.challenge, "s"), EMAIL)
        .await;
    let r = redeem(&app, Auth::Basic(&other, &other_secret), &code, &p.verifier).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // A code lives 60 seconds: redeemable at 59, not at 61.
    let p = pkce();
    let params = request(&f.id, &p.challenge, "s");
    let code = agent.code(&app, &params, EMAIL).await;
    app.clock.advance(59);
    tokens(redeem(&app, f.basic(), &code, &p.verifier).await).await;
    let code = agent.code(&app, &params, EMAIL).await;
    app.clock.advance(61);
    let r = redeem(&app, f.basic(), &code, &p.verifier).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // PKCE S256 is required at the authorization request: missing challenge, plain, missing method.
    let p = pkce();
    let good = request(&f.id, &p.challenge, "pk");
    for bad in [
        with(good.clone(), "code_challenge", None),
        with(good.clone(), "code_challenge_method", Some("plain")),
        with(good.clone(), "code_challenge_method", None),
    ] {
        let r = agent.get(&authorize_path(&bad)).await;
        assert_eq!(
            error_of(&app, &location(&r), "pk"),
            "invalid_request",
            "{bad:?}"
        );
    }

    // A wrong verifier fails and spends the code: the right one then fails too.
    let code = agent.code(&app, &good, EMAIL).await;
    let r = redeem(&app, f.basic(), &code, &pkce().verifier).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let r = redeem(&app, f.basic(), &code, &p.verifier).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // A downgrade to plain (the challenge sent as the verifier), or no verifier at all, fails.
    let p = pkce();
    let good = request(&f.id, &p.challenge, "pk");
    let code = agent.code(&app, &good, EMAIL).await;
    let r = redeem(&app, f.basic(), &code, &p.challenge).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let code = agent.code(&app, &good, EMAIL).await;
    let r = token_call(
        &app,
        f.basic(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // The right verifier, in time, works.
    let code = agent.code(&app, &good, EMAIL).await;
    tokens(redeem(&app, f.basic(), &code, &p.verifier).await).await;
});

both_engines!(redirect_uri_near_misses_are_refused_on_the_page, |app| {
    let f = fixture(&app).await;
    let agent = Agent::new(&app);
    agent.sign_in(EMAIL).await;
    let p = pkce();
    let good = request(&f.id, &p.challenge, "s");
    for near in [
        "https://app.example/cb/",
        "https://APP.EXAMPLE/cb",
        "https://App.example/cb",
        "https://app.example/cb?x=1",
        "https://app.example/cb@evil.example",
        "https://app.example@evil.example/cb",
        "https://app.example/cb/%2e%2e/x",
        "https://app.example/cb/../cb",
        "https://app.example:443/cb",
        "http://app.example/cb",
        "https://evil.example/cb",
        "",
    ] {
        let r = agent
            .get(&authorize_path(&with(
                good.clone(),
                "redirect_uri",
                Some(near),
            )))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{near}");
        assert!(r.headers().get(LOCATION).is_none(), "{near}: a Location");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{near}"
        );
        assert_page_headers(r.headers(), "error page");
        let html = r.text().await.unwrap();
        assert!(!html.contains("evil.example"), "{near}: reflected");
    }
    // An unknown client: the page too.
    let r = agent
        .get(&authorize_path(&with(
            good.clone(),
            "client_id",
            Some("nobody"),
        )))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get(LOCATION).is_none());

    // At the token endpoint the redirect URI must be the authorization request's.
    let (two, two_secret) = app
        .client(app_spec("Two URIs", &[REDIRECT, "https://app.example/cb2"]))
        .await;
    let p = pkce();
    let params = request(&two, &p.challenge, "s");
    // Another registered URI, and a near miss, than the authorization request's.
    for other in ["https://app.example/cb2", "https://app.example/cb/"] {
        let code = agent.code(&app, &params, EMAIL).await;
        let r = token_call(
            &app,
            Auth::Basic(&two, &two_secret),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", other),
                ("code_verifier", &p.verifier),
            ],
        )
        .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    // The other registered URI at authorize works, and its code is redeemed with it.
    let params = with(params, "redirect_uri", Some("https://app.example/cb2"));
    let to = agent.allow(&params, EMAIL).await;
    assert!(to.starts_with("https://app.example/cb2?"), "{to}");
    let code = param(&to, "code").unwrap();
    let r = token_call(
        &app,
        Auth::Basic(&two, &two_secret),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example/cb2"),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    tokens(r).await;
});

both_engines!(hostile_state_round_trips_byte_for_byte, |app| {
    let f = fixture(&app).await;
    let agent = Agent::new(&app);
    let p = pkce();
    let first = "a b&c=d%25e+f/<script>\"'#?é";

    // Through the login form and the consent form (HTML-escaped, then posted back): denied, then allowed.
    let params = request(&f.id, &p.challenge, first);
    let html = consent_page(agent.authorize(&params, EMAIL).await).await;
    assert!(!html.contains("<script>"), "state not escaped");
    let to = location(&agent.decide(&html, "deny").await);
    assert_eq!(error_of(&app, &to, first), "access_denied");
    let html = consent_page(agent.authorize(&params, EMAIL).await).await;
    code_of(
        &app,
        &location(&agent.decide(&html, "allow").await),
        &params,
    );

    // Consent remembered: straight back, with a code or with an error.
    let long = "x".repeat(500);
    for state in [
        first,
        "%",
        "%%2",
        "+",
        "&amp;&lt;&#x27;",
        "=?&#/;,:@$!*()[]{}|\\^`",
        "😀 ∑ ü ß 中文",
        "javascript:alert(1)",
        "  leading and trailing  ",
        long.as_str(),
    ] {
        let params = request(&f.id, &p.challenge, state);
        code_of(
            &app,
            &location(&agent.authorize(&params, EMAIL).await),
            &params,
        );
        let bad = with(params.clone(), "scope", Some("nonexistent"));
        let to = location(&agent.authorize(&bad, EMAIL).await);
        assert_eq!(error_of(&app, &to, state), "invalid_scope", "{state}");
    }
});

both_engines!(concurrent_refreshes_have_one_winner, |app| {
    let f = fixture(&app).await;
    let agent = Agent::new(&app);
    let p = pkce();
    let code = agent
        .code(&app, &request(&f.id, &p.challenge, "s"), EMAIL)
        .await;
    let (_, refresh_token, _) = tokens(redeem(&app, f.basic(), &code, &p.verifier).await).await;
    let rs = futures_util::future::join_all(
        (0..20).map(|_| refresh(&app, f.basic(), &refresh_token, None)),
    )
    .await;
    exactly_one_winner(&outcomes(rs).await);
});

both_engines!(a_foreign_clients_refresh_token_is_refused, |app| {
    let f = fixture(&app).await;
    let (other, other_secret) = app.client(app_spec("Other app", &[REDIRECT])).await;
    let agent = Agent::new(&app);
    let p = pkce();
    let code = agent
        .code(&app, &request(&f.id, &p.challenge, "s"), EMAIL)
        .await;
    let (_, refresh_token, _) = tokens(redeem(&app, f.basic(), &code, &p.verifier).await).await;
    for _ in 0..2 {
        let r = refresh(
            &app,
            Auth::Basic(&other, &other_secret),
            &refresh_token,
            None,
        )
        .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    // The owner's token is untouched: not spent, its family not revoked.
    let (access, _, _) = tokens(refresh(&app, f.basic(), &refresh_token, None).await).await;
    assert!(active(&app, &f, &access).await);
});

// RFC 7009 for a refresh token: revoking it revokes its family's refresh and access tokens; another client's
// revocation is a 200 that changes nothing.
both_engines!(revoking_a_refresh_token_revokes_its_family, |app| {
    let f = fixture(&app).await;
    let (other, other_secret) = app.client(app_spec("Other app", &[REDIRECT])).await;
    let agent = Agent::new(&app);
    let p = pkce();
    let code = agent
        .code(&app, &request(&f.id, &p.challenge, "s"), EMAIL)
        .await;
    let (access0, refresh0, _) = tokens(redeem(&app, f.basic(), &code, &p.verifier).await).await;
    let (access1, refresh1, _) = tokens(refresh(&app, f.basic(), &refresh0, None).await).await;
    let revoke = |auth: Auth<'_>, token: String| {
        let form = vec![
            ("token", token),
            ("token_type_hint", "refresh_token".to_owned()),
        ];
        let req = app.http.post(app.url("/oauth2/revoke"));
        let req = match auth {
            Auth::Basic(id, secret) => req.basic_auth(id, Some(secret)),
            Auth::Public(_) => req,
        };
        async move { req.form(&form).send().await.unwrap() }
    };
    let r = revoke(Auth::Basic(&other, &other_secret), refresh1.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        active(&app, &f, &access1).await,
        "another client's revocation changed nothing"
    );
    let r = revoke(f.basic(), refresh1.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!active(&app, &f, &access0).await);
    assert!(!active(&app, &f, &access1).await);
    let r = refresh(&app, f.basic(), &refresh1, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
});

both_engines!(public_client_flow_and_no_client_credentials, |app| {
    fixture(&app).await;
    let mut spec = app_spec("Mobile app", &[REDIRECT]);
    spec["client_type"] = json!("public");
    let (status, body) = app.admin_call(Method::POST, "/clients", Some(spec)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["client_secret"].is_null(), "{body}");
    assert_eq!(body["client_type"], "public", "{body}");
    let id = body["client_id"].as_str().unwrap().to_owned();
    let public = Auth::Public(&id);

    let agent = Agent::new(&app);
    let p = pkce();
    let code = agent
        .code(&app, &request(&id, &p.challenge, "s"), EMAIL)
        .await;
    let (access, refresh0, _) = tokens(redeem(&app, public, &code, &p.verifier).await).await;
    assert_eq!(claims(&access)["client_id"], id.as_str());
    let (_, refresh1, _) = tokens(refresh(&app, public, &refresh0, None).await).await;
    assert_ne!(refresh0, refresh1);
    let r = refresh(&app, public, &refresh0, None).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // No client_credentials for a client without a secret, at the token endpoint or at registration.
    let r = token_call(&app, public, &[("grant_type", "client_credentials")]).await;
    assert_error(r, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    let mut spec = app_spec("Mobile app 2", &[REDIRECT]);
    spec["client_type"] = json!("public");
    spec["grant_types"] = json!(["authorization_code", "refresh_token", "client_credentials"]);
    let (status, body) = app.admin_call(Method::POST, "/clients", Some(spec)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
});

both_engines!(csrf_security_headers_and_cookie_attributes, |app| {
    let f = fixture(&app).await;
    account(&app, "other@example.com", "P-2").await;

    // The login page sets the pre-login cookie; signing in sets the session cookie; both HttpOnly, Lax, not
    // Secure on an http issuer.
    let agent = Agent::new(&app);
    let page = agent.get("/login").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_page_headers(page.headers(), "login page");
    assert_cookie_attributes(&set_cookie(page.headers(), "keyward_login"));
    let html = page.text().await.unwrap();
    let login_csrf = hidden(&html, "csrf");

    // A login POST without the login cookie, or without the token, is refused.
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = bare
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(query(&[
            ("email", EMAIL),
            ("password", PASSWORD),
            ("csrf", &login_csrf),
            ("next", "/console/keys"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get(SET_COOKIE).is_none());
    assert_page_headers(r.headers(), "403 page");
    for csrf in [None, Some("wrong")] {
        let mut form = vec![
            ("email", EMAIL),
            ("password", PASSWORD),
            ("next", "/console/keys"),
        ];
        form.extend(csrf.map(|c| ("csrf", c)));
        let r = agent.post("/login", &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{csrf:?}");
        assert!(r.headers().get(SET_COOKIE).is_none());
    }
    let r = agent
        .post(
            "/login",
            &[
                ("email", EMAIL),
                ("password", PASSWORD),
                ("csrf", &login_csrf),
                ("next", "/console/keys"),
            ],
        )
        .await;
    assert_cookie_attributes(&set_cookie(r.headers(), "keyward_session"));
    assert_eq!(location(&r), "/console/keys");

    // `next` is never an open redirect: anything but an authorization request or a console page goes to the
    // console.
    for next in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "/login",
        "/oauth2/authorizeX?a=b",
        "javascript:alert(1)",
        "/console//evil.example",
        "/console/\\evil",
        "/consoleX",
    ] {
        let other = Agent::new(&app);
        let html = other.get("/login").await.text().await.unwrap();
        let csrf = hidden(&html, "csrf");
        let r = other
            .post(
                "/login",
                &[
                    ("email", EMAIL),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(location(&r), "/console", "{next}");
        // The login page, too, offers only a safe `next`.
        let page = other
            .get(&format!("/login?next={}", encode_component(next)))
            .await;
        assert_eq!(hidden(&page.text().await.unwrap(), "next"), "/console");
    }

    // The consent form: without its token, with a wrong one, or with another session's, 403 and no code.
    let p = pkce();
    let params = request(&f.id, &p.challenge, "s");
    let html = consent_page(agent.authorize(&params, EMAIL).await).await;
    let other = Agent::new(&app);
    let other_html = consent_page(other.authorize(&params, "other@example.com").await).await;
    let other_csrf = hidden(&other_html, "csrf");
    assert_ne!(other_csrf, hidden(&html, "csrf"));
    let fields: Vec<(String, String)> = hidden_fields(&html)
        .into_iter()
        .filter(|(k, _)| k != "csrf")
        .chain([("decision".to_owned(), "allow".to_owned())])
        .collect();
    for csrf in [None, Some("wrong"), Some(other_csrf.as_str())] {
        let mut form: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        form.extend(csrf.map(|c| ("csrf", c)));
        let r = agent.post("/oauth2/authorize", &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{csrf:?}");
        assert!(r.headers().get(LOCATION).is_none());
        assert_page_headers(r.headers(), "403 page");
        assert!(!r.text().await.unwrap().contains("code="));
    }
    // Nothing was agreed: the request still shows the consent page, and the real form still works.
    let html = consent_page(agent.authorize(&params, EMAIL).await).await;
    code_of(
        &app,
        &location(&agent.decide(&html, "allow").await),
        &params,
    );

    // The console's revoke form, likewise.
    let r = agent
        .post(
            "/console/apps/revoke",
            &[("csrf", "wrong"), ("client_id", &f.id)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let html = agent.get("/console/apps").await.text().await.unwrap();
    assert!(html.contains(&f.id), "revoked without a token");
});

both_engines!(failed_logins_are_throttled, |app| {
    fixture(&app).await;
    let agent = Agent::new(&app);
    let html = agent.get("/login").await.text().await.unwrap();
    let csrf = hidden(&html, "csrf");
    for n in 1..=5 {
        let r = login_post(&agent, &csrf, "wrong password!").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "failure {n}");
        assert!(r.headers().get(SET_COOKIE).is_none());
    }
    // The sixth try waits, even with the right password.
    let r = login_post(&agent, &csrf, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get(SET_COOKIE).is_none());
    let wait: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1, "{wait}");
    // Once the wait is over, the right password gets in.
    app.clock.advance(wait + 1);
    let r = login_post(&agent, &csrf, PASSWORD).await;
    assert_eq!(location(&r), "/console");
    set_cookie(r.headers(), "keyward_session");
    assert_eq!(agent.get("/console/apps").await.status(), StatusCode::OK);
});
