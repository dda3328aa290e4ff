//! Forms are read strictly wherever Keyward parses one (RFC 6749 Appendix B): a parameter with an empty name
//! (`a=b&&c=d`, `=value`, a trailing `&`) is refused with 400 `invalid_request` at the token, introspection and
//! revocation endpoints and at the authorization endpoint, where the same body without the empty segment works.

use crate::both_engines;
use crate::harness::assert_error;
use crate::oauth_agent::{Agent, EMAIL, fixture, hidden, pkce, query, request};
use reqwest::StatusCode;

both_engines!(empty_parameter_names_are_invalid_request, |app| {
    let (id, secret) = app.api_client().await;
    let basic = Some((id.as_str(), secret.as_str()));
    let form = "application/x-www-form-urlencoded";
    let token = app
        .post_raw(
            "/oauth2/token",
            basic,
            form,
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(token.status(), StatusCode::OK);
    let access: serde_json::Value = token.json().await.unwrap();
    let access = access["access_token"].as_str().unwrap().to_owned();

    for (path, good) in [
        ("/oauth2/token", "grant_type=client_credentials".to_owned()),
        ("/oauth2/introspect", format!("token={access}")),
        ("/oauth2/revoke", "token=not-a-token".to_owned()),
    ] {
        assert_eq!(
            app.post_raw(path, basic, form, &good).await.status(),
            StatusCode::OK,
            "{path}"
        );
        for body in [
            format!("{good}&&x=1"),
            format!("x=1&&{good}"),
            format!("{good}&=value"),
            format!("=value&{good}"),
            format!("{good}&"),
            format!("&{good}"),
            format!("{good}&=&x=1"),
        ] {
            let r = app.post_raw(path, basic, form, &body).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path} {body}");
            let e = assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
            assert!(
                e["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("empty name"),
                "{e}"
            );
        }
        // A name that decodes to `=` is a name.
        let r = app
            .post_raw(path, basic, form, &format!("{good}&%3D=1"))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
});

both_engines!(pages_refuse_forms_with_empty_names, |app| {
    fixture(&app).await;
    let agent = Agent::new(&app);
    agent.sign_in(EMAIL).await;
    let csrf = hidden(
        &agent.get("/console/keys").await.text().await.unwrap(),
        "csrf",
    );
    let form = "application/x-www-form-urlencoded";
    for (path, good) in [
        ("/login", "email=a%40b.example&password=x".to_owned()),
        ("/logout", format!("csrf={csrf}")),
        ("/console/keys", format!("csrf={csrf}&name=k")),
        ("/console/apps/revoke", format!("csrf={csrf}&client_id=x")),
    ] {
        for bad in [
            format!("{good}&&x=1"),
            format!("={good}"),
            format!("{good}&"),
        ] {
            let r = agent
                .http
                .post(agent.url(path))
                .header("content-type", form)
                .body(bad.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path} {bad}");
            let html = r.text().await.unwrap();
            assert!(html.contains("empty name"), "{path} {bad}: {html}");
        }
    }
    let r = agent.get("/login?next=%2Fconsole&&x=1").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The session is still there: nothing was done.
    assert_eq!(agent.get("/console/keys").await.status(), StatusCode::OK);
});

both_engines!(authorization_requests_with_empty_names_are_refused, |app| {
    let f = fixture(&app).await;
    let agent = Agent::new(&app);
    let p = pkce();
    let good = query(&request(&f.id, &p.challenge, "s"));
    // The good request goes to the login page.
    let r = agent.get(&format!("/oauth2/authorize?{good}")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    for bad in [
        format!("{good}&&x=1"),
        format!("={good}"),
        format!("{good}&"),
        format!("{good}&=x"),
    ] {
        let r = agent.get(&format!("/oauth2/authorize?{bad}")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let html = r.text().await.unwrap();
        assert!(html.contains("empty name"), "{bad}: {html}");
    }
});
