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

/// RFC 4648 base32 (no padding), as the page shows the secret.
fn base32_decode(text: &str) -> Vec<u8> {
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {text}"),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// The text of the element with id `id` (its first text node).
fn text_of(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("{id} in {html}"));
    let rest = &html[start..];
    rest[rest.find('>').unwrap() + 1..rest.find('<').unwrap()].to_owned()
}

/// Starts setting up an authenticator app from the account page: the secret the page shows, and the page.
async fn begin(agent: &Agent, csrf: &str) -> (Vec<u8>, String) {
    let html = agent
        .post("/console/account/totp/begin", &[("csrf", csrf)])
        .await
        .text()
        .await
        .unwrap();
    (base32_decode(&text_of(&html, "totp-secret")), html)
}

/// The code an authenticator app with `secret` shows at `unix`.
fn code_at(secret: &[u8], unix: i64) -> String {
    format!(
        "{:06}",
        keyward::crypto::hotp(secret, keyward_core::totp::step(unix), 6)
    )
}

/// Sets up an authenticator app for the signed-in account and confirms it with its current code.
async fn enrol(app: &crate::harness::TestApp, agent: &Agent, csrf: &str) {
    let (secret, _) = begin(agent, csrf).await;
    let r = agent
        .post(
            "/console/account/totp/confirm",
            &[("csrf", csrf), ("code", &code_at(&secret, app.clock.now()))],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// Signs in with the password and then `code` on the second step; returns the second step's answer.
async fn sign_in_with_code(agent: &Agent, code: &str) -> reqwest::Response {
    let r = agent.login_with(EMAIL_2FA, PASSWORD, "/console").await;
    assert_eq!(
        location(&r),
        "/login/code?next=%2Fconsole",
        "the password leads to the code page"
    );
    let page = agent.get("/login/code?next=%2Fconsole").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    agent
        .post(
            "/login/code",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("next", "/console"),
                ("code", code),
            ],
        )
        .await
}

const EMAIL_2FA: &str = "two@example.com";

both_engines!(an_authenticator_app_guards_the_sign_in, |app| {
    let (_, desk) = setup(&app, EMAIL_2FA, &["orders:read"]).await;
    let phone = browser(&app, "Phone");
    phone.sign_in(EMAIL_2FA).await;
    let html = account_page(&desk).await;
    let csrf = hidden(&html, "csrf");
    let (secret, html) = begin(&desk, &csrf).await;
    assert_eq!(secret.len(), 20);
    assert!(
        text_of(&html, "totp-uri").starts_with("otpauth://totp/"),
        "{html}"
    );
    let code_at = |t: i64| code_at(&secret, t);
    // A wrong code is refused; the right one turns it on, shows ten recovery codes once, and signs the phone out.
    let wrong = format!(
        "{:06}",
        (code_at(app.clock.now()).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let r = desk
        .post(
            "/console/account/totp/confirm",
            &[("csrf", &csrf), ("code", &wrong)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = desk
        .post(
            "/console/account/totp/confirm",
            &[("csrf", &csrf), ("code", &code_at(app.clock.now()))],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let recovery: Vec<String> = html
        .split("<li><code>")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10, "{html}");
    assert!(
        !signed_in(&phone).await,
        "adding a second factor signs the others out"
    );
    assert!(signed_in(&desk).await);
    assert!(account_page(&desk).await.contains("id=\"factor-on\""));

    // Signing in now takes a code: the one used to confirm is spent (same time step), the next one works.
    let laptop = browser(&app, "Laptop");
    let r = sign_in_with_code(&laptop, &code_at(app.clock.now())).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a code is accepted once"
    );
    assert!(
        !signed_in(&laptop).await,
        "the password alone opens no session"
    );
    app.clock.advance(keyward_core::totp::PERIOD);
    let r = sign_in_with_code(&laptop, &code_at(app.clock.now())).await;
    assert_eq!(location(&r), "/console");
    assert!(signed_in(&laptop).await);
    // A recovery code signs in once.
    let r = sign_in_with_code(&phone, &recovery[0]).await;
    assert_eq!(location(&r), "/console");
    let tablet = browser(&app, "Tablet");
    let r = sign_in_with_code(&tablet, &recovery[0]).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a recovery code is spent"
    );

    // Turning it off needs the password, and signs the others out.
    let r = desk
        .post(
            "/console/account/totp/remove",
            &[("csrf", &csrf), ("password", "wrong password")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = desk
        .post(
            "/console/account/totp/remove",
            &[("csrf", &csrf), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(location(&r), "/console/account?done=factor-removed");
    assert!(!signed_in(&laptop).await);
    let r = tablet.login_with(EMAIL_2FA, PASSWORD, "/console").await;
    assert_eq!(location(&r), "/console", "no code asked once it is off");
});

/// With `require_second_factor = "all"`, an account without one is led to set it up before it can make a key.
async fn a_required_second_factor_comes_before_keys(engine: crate::harness::Engine) {
    let app =
        crate::harness::TestApp::with_env(engine, &[("KEYWARD_REQUIRE_SECOND_FACTOR", "all")])
            .await;
    let (_, desk) = setup(&app, "must@example.com", &["orders:read"]).await;
    let r = desk.get("/console/keys/new").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Set up two-step sign-in first")
    );
    let html = account_page(&desk).await;
    let csrf = hidden(&html, "csrf");
    let r = desk
        .post("/console/keys", &[("csrf", csrf.as_str()), ("name", "k")])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "the form's target too");
    enrol(&app, &desk, &csrf).await;
    assert_eq!(desk.get("/console/keys/new").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_second_factor_comes_before_keys_sqlite() {
    a_required_second_factor_comes_before_keys(crate::harness::Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_second_factor_comes_before_keys_postgres() {
    a_required_second_factor_comes_before_keys(crate::harness::Engine::Postgres).await;
}

/// An operator turns off two-step sign-in for a holder who lost the app and the recovery codes: the CLI does it,
/// the account's sessions end, and the next sign-in asks for the password alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_removes_a_lost_second_factor() {
    let app = crate::harness::TestApp::sqlite().await;
    let (account, desk) = setup(&app, EMAIL_2FA, &["orders:read"]).await;
    let csrf = hidden(&account_page(&desk).await, "csrf");
    enrol(&app, &desk, &csrf).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args([
            "accounts",
            "remove-second-factor",
            &account,
            "--database",
            &app.database,
        ])
        .env("KEYWARD_DATA_DIR", app.dir.path())
        .env("KEYWARD_ISSUER", &app.base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("two-step sign-in is off"));
    assert!(!signed_in(&desk).await, "its sessions ended");
    let r = desk.login_with(EMAIL_2FA, PASSWORD, "/console").await;
    assert_eq!(
        location(&r),
        "/console",
        "the password alone signs in again"
    );
}
