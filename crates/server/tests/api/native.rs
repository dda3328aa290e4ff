//! Apps on the user's own machine (RFC 8252): a public client is shown the consent page on every authorization,
//! even after the person agreed before (§8.6), while a confidential app keeps remembered consent; a loopback IP
//! redirect URI matches any port (§7.3) with its path and query still exact, and nothing else is loosened.

use crate::both_engines;
use crate::harness::{TestApp, assert_error};
use crate::oauth_agent::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Registers a public app with these redirect URIs; returns its id.
async fn public_app(app: &TestApp, name: &str, redirect_uris: &[&str]) -> String {
    let mut spec = app_spec(name, redirect_uris);
    spec["client_type"] = json!("public");
    let (status, body) = app.admin_call(Method::POST, "/clients", Some(spec)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["client_id"].as_str().unwrap().to_owned()
}

/// The parameters of an authorization request with its own redirect URI.
fn request_to<'a>(
    client_id: &'a str,
    redirect_uri: &'a str,
    challenge: &'a str,
) -> Vec<(&'a str, &'a str)> {
    with(
        request(client_id, challenge, "st"),
        "redirect_uri",
        Some(redirect_uri),
    )
}

/// The code in a redirect to `redirect_uri` (its own query kept, Keyward's parameters added after it).
fn code_at(to: &str, redirect_uri: &str) -> String {
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    assert!(to.starts_with(&format!("{redirect_uri}{sep}")), "{to}");
    param(to, "code").expect("code")
}

both_engines!(public_clients_see_the_consent_page_every_time, |app| {
    let f = fixture(&app).await;
    let id = public_app(&app, "Desktop app", &[REDIRECT]).await;
    let agent = Agent::new(&app);

    // The first authorization: the consent page, allowed.
    let p = pkce();
    let params = request(&id, &p.challenge, "one");
    let html = consent_page(agent.authorize(&params, EMAIL).await).await;
    let to = location(&agent.decide(&html, "allow").await);
    let code = code_of(&app, &to, &params);
    tokens(redeem(&app, Auth::Public(&id), &code, &p.verifier).await).await;

    // The same request again, and a narrower one: the page each time, never a code without a click. Another
    // program on the machine could have started either with its own PKCE challenge.
    for scope in [SCOPE, "orders:read"] {
        let p = pkce();
        let params = with(request(&id, &p.challenge, "again"), "scope", Some(scope));
        let r = agent.authorize(&params, EMAIL).await;
        let html = consent_page(r).await;
        assert!(html.contains("Desktop app"), "{html}");
        // Denying still works and issues nothing.
        let to = location(&agent.decide(&html, "deny").await);
        assert_eq!(error_of(&app, &to, "again"), "access_denied");
    }

    // A confidential app keeps remembered consent: after one click, the same request gets a code at once.
    let p = pkce();
    let params = request(&f.id, &p.challenge, "conf");
    let html = consent_page(agent.authorize(&params, EMAIL).await).await;
    code_of(
        &app,
        &location(&agent.decide(&html, "allow").await),
        &params,
    );
    let p = pkce();
    let params = request(&f.id, &p.challenge, "conf-again");
    let r = agent.authorize(&params, EMAIL).await;
    let code = code_of(&app, &location(&r), &params);
    tokens(redeem(&app, f.basic(), &code, &p.verifier).await).await;
});

both_engines!(
    loopback_redirect_uris_match_any_port_and_nothing_else,
    |app| {
        fixture(&app).await;
        let id = public_app(
            &app,
            "CLI tool",
            &[
                "http://127.0.0.1/callback",
                "http://[::1]:8400/cb?app=cli",
                "http://localhost:7000/cb",
            ],
        )
        .await;
        let agent = Agent::new(&app);
        agent.sign_in(EMAIL).await;

        // The port the tool's listener got from the system: any, with or without one registered.
        for redirect_uri in [
            "http://127.0.0.1:49152/callback",
            "http://127.0.0.1/callback",
            "http://[::1]:61000/cb?app=cli",
            "http://localhost:7000/cb",
        ] {
            let p = pkce();
            let params = request_to(&id, redirect_uri, &p.challenge);
            let html = consent_page(agent.authorize(&params, EMAIL).await).await;
            let to = location(&agent.decide(&html, "allow").await);
            let code = code_at(&to, redirect_uri);
            // Redeemed with the redirect URI of the authorization request, port included.
            let r = token_call(
                &app,
                Auth::Public(&id),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", &p.verifier),
                ],
            )
            .await;
            tokens(r).await;
        }

        // A redemption naming another port than the authorization request did is refused.
        let p = pkce();
        let params = request_to(&id, "http://127.0.0.1:50001/callback", &p.challenge);
        let html = consent_page(agent.authorize(&params, EMAIL).await).await;
        let code = code_at(
            &location(&agent.decide(&html, "allow").await),
            "http://127.0.0.1:50001/callback",
        );
        let r = token_call(
            &app,
            Auth::Public(&id),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:50002/callback"),
                ("code_verifier", &p.verifier),
            ],
        )
        .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;

        // Path and query are exact; the three loopback hosts are distinct; localhost keeps its port; nothing else
        // is loosened. Each stays on Keyward's error page: never a redirect to an unregistered URI.
        for near in [
            "http://127.0.0.1:49152/callback/",
            "http://127.0.0.1:49152/Callback",
            "http://127.0.0.1:49152/callback?x=1",
            "http://[::1]:61000/cb",
            "http://[::1]:61000/cb?app=other",
            "http://[::1]:49152/callback",
            "http://localhost:49152/callback",
            "http://localhost:7001/cb",
            "https://127.0.0.1:49152/callback",
            "http://127.0.0.2:49152/callback",
            "http://127.0.0.1.evil.example:49152/callback",
            "http://127.0.0.1:49152@evil.example/callback",
        ] {
            let p = pkce();
            let r = agent
                .get(&authorize_path(&request_to(&id, near, &p.challenge)))
                .await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{near}");
            let html = r.text().await.unwrap();
            assert!(html.contains("redirect_uri"), "{near}: {html}");
        }
    }
);
