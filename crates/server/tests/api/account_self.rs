//! An account's own sign-ins in the console (issue 23, items 3 and 5): it sees where it is signed in (browser,
//! address, last use), signs one session or all the others out, and changes its password, which needs the current
//! one, refuses a weak one, and signs out every other browser.

use reqwest::{Method, StatusCode};

use crate::both_engines;
use crate::console::setup;
use crate::oauth_agent::{Agent, PASSWORD, hidden, location};

const EMAIL: &str = "own@example.com";

/// A second browser, telling its name in `User-Agent`.
fn browser(app: &crate::harness::TestApp, name: &str) -> Agent {
    Agent {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(name)
            .build()
            .unwrap(),
        base: app.base.clone(),
    }
}

async fn account_page(agent: &Agent) -> String {
    let r = agent.get("/console/account").await;
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

/// Whether `agent` is still signed in (a console page, not the way to the login page).
async fn signed_in(agent: &Agent) -> bool {
    agent.get("/console/keys").await.status() == StatusCode::OK
}

/// The session ids the page offers to sign out.
fn session_ids(html: &str) -> Vec<String> {
    html.split("/console/account/sessions/")
        .skip(1)
        .filter_map(|rest| rest.split_once("/end\"").map(|(id, _)| id.to_owned()))
        .collect()
}

both_engines!(
    an_account_sees_and_ends_its_sessions_and_changes_its_password,
    |app| {
        let (account, desk) = setup(&app, EMAIL, &["orders:read"]).await;
        let phone = browser(&app, "Phone browser 1.0");
        phone.sign_in(EMAIL).await;

        // Two sessions, this browser marked, the other named by its browser and signed out from here.
        let html = account_page(&desk).await;
        assert!(
            html.contains("Phone browser 1.0") && html.contains("this browser"),
            "{html}"
        );
        assert!(html.contains("127.0.0.1"), "{html}");
        let ids = session_ids(&html);
        assert_eq!(ids.len(), 1, "{html}");
        let csrf = hidden(&html, "csrf");
        let r = desk
            .post(
                &format!("/console/account/sessions/{}/end", ids[0]),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(location(&r), "/console/account?done=ended");
        assert!(!signed_in(&phone).await, "the phone is signed out");
        assert!(signed_in(&desk).await);
        // Another account's session id, or a made-up one, is not found.
        let r = desk
            .post("/console/account/sessions/ses_nope/end", &[("csrf", &csrf)])
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);

        // All the others at once.
        phone.sign_in(EMAIL).await;
        let r = desk
            .post("/console/account/sessions/end-others", &[("csrf", &csrf)])
            .await;
        assert_eq!(location(&r), "/console/account?done=others");
        assert!(!signed_in(&phone).await && signed_in(&desk).await);

        // Changing the password: the current one must be right, the new one strong.
        phone.sign_in(EMAIL).await;
        let change = |current: &'static str, new: &'static str| {
            let csrf = csrf.clone();
            let desk = &desk;
            async move {
                desk.post(
                    "/console/account/password",
                    &[("csrf", &csrf), ("current", current), ("new", new)],
                )
                .await
            }
        };
        let r = change("not my password", "violet kettle harbour simmer").await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("current password is not right")
        );
        for weak in ["password1234", "qwertyuiop12", "own@example.com1"] {
            let r = change(PASSWORD, weak).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{weak}");
            assert!(
                r.text().await.unwrap().contains("too easy to guess"),
                "{weak}"
            );
        }
        assert!(signed_in(&phone).await, "refused changes sign nobody out");
        let r = change(PASSWORD, "violet kettle harbour simmer").await;
        assert_eq!(location(&r), "/console/account?done=password");
        assert!(
            r.headers()
                .get_all("set-cookie")
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("keyward_session=")),
            "this browser gets a new session"
        );
        assert!(signed_in(&desk).await, "this browser stays signed in");
        assert!(
            !signed_in(&phone).await,
            "every other browser is signed out"
        );
        assert_eq!(session_ids(&account_page(&desk).await).len(), 0);
        // The old password no longer signs in; the new one does.
        let r = phone.login_with(EMAIL, PASSWORD, "/console").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = phone
            .login_with(EMAIL, "violet kettle harbour simmer", "/console")
            .await;
        assert_eq!(location(&r), "/console");

        // The account sees its own recent activity: sign-ins, the failed one above, the password and session changes.
        let html = account_page(&desk).await;
        let events = html.split("id=\"events\"").nth(1).unwrap_or_default();
        for what in [
            "Signed in",
            "A sign-in failed (wrong password)",
            "A password change failed (wrong current password)",
            "Password changed",
            "A session was signed out",
            "Every other session was signed out",
        ] {
            assert!(events.contains(what), "{what}: {events}");
        }

        // Each change is in the audit log, by the account.
        let (_, audit) = app.admin_call(Method::GET, "/audit?limit=50", None).await;
        let actions: Vec<&str> = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"] == format!("account:{account}"))
            .filter_map(|e| e["action"].as_str())
            .collect();
        for a in [
            "account.session.end",
            "account.session.end_others",
            "account.password.change",
        ] {
            assert!(actions.contains(&a), "{a}: {actions:?}");
        }
    }
);

both_engines!(a_change_of_role_signs_the_account_out, |app| {
    let (account, desk) = setup(&app, "role@example.com", &["orders:read"]).await;
    assert!(signed_in(&desk).await);
    // The same role again changes nothing; another role ends the sessions opened under the old one.
    let (s, _) = app
        .admin_call(
            Method::PATCH,
            &format!("/accounts/{account}"),
            Some(serde_json::json!({"role": "user"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(signed_in(&desk).await);
    let (s, _) = app
        .admin_call(
            Method::PATCH,
            &format!("/accounts/{account}"),
            Some(serde_json::json!({"role": "operator"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        !signed_in(&desk).await,
        "signed out by the change of privilege"
    );
});
