//! Email and password resets against a real SMTP server (aiosmtpd, started by the test, writing each message to
//! a maildir): the reset flow end to end on both engines, an unknown address, an SMTP server that comes up late,
//! `kill -9` between the request and the delivery, and the CLI's reset link without email.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;

use crate::both_engines;
use crate::child::{FreshPg, Process, Served};
use crate::harness::{Engine, TestApp, eventually};
use crate::oauth_agent::{Agent, EMAIL, PASSWORD, account, hidden, location};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// aiosmtpd on `127.0.0.1:port`, its messages in `maildir/new`; stopped on drop.
struct Smtpd {
    _process: Process,
    maildir: PathBuf,
}

/// A port nothing listens on now (the SMTP server may be started on it later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Smtpd {
    /// Starts aiosmtpd with its `Mailbox` handler; waits until it accepts connections.
    async fn start(port: u16, maildir: &Path) -> Smtpd {
        let python = std::env::var("AIOSMTPD_PYTHON").unwrap_or_else(|_| {
            panic!("AIOSMTPD_PYTHON is not set: run the tests with scripts/test, which installs aiosmtpd")
        });
        let mut command = Command::new(python);
        command
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir);
        let process = Process::spawn("aiosmtpd", command);
        eventually(Duration::from_secs(20), "aiosmtpd listening", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        Smtpd {
            _process: process,
            maildir: maildir.to_owned(),
        }
    }
}

/// The messages delivered to `maildir` so far.
fn messages(maildir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect()
}

/// Waits for exactly one message and returns it with quoted-printable soft breaks and `=3D` undone.
async fn one_message(maildir: &Path, within: Duration) -> String {
    eventually(within, "a delivered message", || async {
        !messages(maildir).is_empty()
    })
    .await;
    let all = messages(maildir);
    assert_eq!(all.len(), 1, "{all:#?}");
    all[0]
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// The reset link's path and query (`/login/reset?token=…`) in a message for a server at `base`.
fn link_in(message: &str, base: &str) -> String {
    let start = message
        .find(&format!("{base}/login/reset?token="))
        .unwrap_or_else(|| panic!("no link in {message}"));
    let link: String = message[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    link.trim_start_matches(base).to_owned()
}

/// The SMTP settings of a server sending to `127.0.0.1:port` in plain SMTP (loopback only).
fn smtp_env(port: u16) -> Vec<(String, String)> {
    vec![
        (
            "KEYWARD_SMTP_URL".into(),
            format!("smtp://127.0.0.1:{port}"),
        ),
        ("KEYWARD_MAIL_FROM".into(), "portal@keyward.test".into()),
    ]
}

async fn with_smtp(engine: Engine, port: u16) -> TestApp {
    let env = smtp_env(port);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestApp::with_env(engine, &env).await
}

/// GET /login/forgot, then POST it for `email`; returns the POST's answer.
async fn forgot(agent: &Agent, email: &str) -> (StatusCode, String) {
    let page = agent.get("/login/forgot").await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let r = agent
        .post("/login/forgot", &[("email", email), ("csrf", &csrf)])
        .await;
    (r.status(), r.text().await.unwrap())
}

/// Opens a reset link and sets `password`; returns the POST's answer.
async fn reset(agent: &Agent, link: &str, password: &str) -> (StatusCode, String) {
    let page = agent.get(link).await;
    assert_eq!(page.status(), StatusCode::OK, "the link's page");
    let html = page.text().await.unwrap();
    let r = agent
        .post(
            "/login/reset",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("token", &hidden(&html, "token")),
                ("password", password),
            ],
        )
        .await;
    (r.status(), r.text().await.unwrap())
}

/// Runs `$test(engine)` once on each engine, for tests that start their own server.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::harness::Engine::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(crate::harness::Engine::Postgres).await;
            }
        }
    };
}

on_both!(a_forgotten_password_is_reset_from_the_email);
async fn a_forgotten_password_is_reset_from_the_email(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let smtpd = Smtpd::start(port, &dir.path().join("mail")).await;
    let app = with_smtp(engine, port).await;
    let id = account(&app, EMAIL, "P1").await;
    let old = Agent::new(&app);
    old.sign_in(EMAIL).await;
    let signed_in =
        |r: reqwest::Response| r.status() == StatusCode::OK || !location(&r).starts_with("/login");
    assert!(signed_in(old.get("/console/keys").await));

    // An unknown address gets the same page, and no message is queued.
    // Both answers take at least the service's floor (300 ms), so the known address's writes do not show.
    let stranger = Agent::new(&app);
    let started = std::time::Instant::now();
    let (unknown_status, unknown_page) = forgot(&stranger, "nobody@example.com").await;
    let unknown_took = started.elapsed();
    let browser = Agent::new(&app);
    let started = std::time::Instant::now();
    let (status, page) = forgot(&browser, EMAIL).await;
    let known_took = started.elapsed();
    assert!(
        unknown_took >= Duration::from_millis(300),
        "{unknown_took:?}"
    );
    assert!(known_took >= Duration::from_millis(300), "{known_took:?}");
    assert!(
        known_took.abs_diff(unknown_took) < Duration::from_millis(200),
        "{known_took:?} vs {unknown_took:?}"
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!((unknown_status, &unknown_page), (status, &page));
    assert!(page.contains("id=\"forgot-sent\""), "{page}");
    assert_eq!(app.app.store.mail_attempts().await.unwrap().len(), 1);

    let message = one_message(&smtpd.maildir, Duration::from_secs(20)).await;
    assert!(message.contains(&format!("To: {EMAIL}")), "{message}");
    assert!(message.contains("From: portal@keyward.test"), "{message}");
    let link = link_in(&message, &app.base);

    // A password that breaks the rules is refused and leaves the link usable.
    let (status, _) = reset(&browser, &link, "short").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, page) = reset(&browser, &link, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("id=\"reset-done\""), "{page}");

    // The old session is gone, the old password refused, the new one works, the link is spent.
    let r = old.get("/console/keys").await;
    let (status, loc) = (
        r.status(),
        r.headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned()),
    );
    assert!(!signed_in(r), "{status} {loc:?}");
    let again = Agent::new(&app);
    assert_eq!(
        again.login_with(EMAIL, PASSWORD, "/console").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = again.login_with(EMAIL, NEW_PASSWORD, "/console").await;
    assert_eq!(location(&r), "/console");
    assert_eq!(browser.get(&link).await.status(), StatusCode::BAD_REQUEST);

    // The audit log has both halves; the link is in no log entry.
    let audit = app
        .app
        .store
        .audit_page(i64::MAX, Some(&id), 100)
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"account.reset_requested"), "{actions:?}");
    assert!(actions.contains(&"account.reset_completed"), "{actions:?}");
    let token = link.rsplit('=').next().unwrap();
    assert!(audit.iter().all(|e| !e.detail.contains(token)));
    assert_eq!(smtpd.maildir.join("new").read_dir().unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_waits_for_an_smtp_server_that_starts_late() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let app = with_smtp(Engine::Sqlite, port).await;
    account(&app, EMAIL, "P1").await;
    let (status, _) = forgot(&Agent::new(&app), EMAIL).await;
    assert_eq!(status, StatusCode::OK);
    // The first attempt fails (nothing listens) and is retried later.
    eventually(Duration::from_secs(20), "a failed attempt", || async {
        app.app.store.mail_attempts().await.unwrap() == vec![(1, false)]
    })
    .await;
    let smtpd = Smtpd::start(port, &dir.path().join("mail")).await;
    app.clock.advance(60);
    let message = one_message(&smtpd.maildir, Duration::from_secs(20)).await;
    assert!(message.contains("/login/reset?token="));
    // Recorded as sent, after at least one failure (the row is updated once the server has answered).
    eventually(Duration::from_secs(10), "the attempt recorded", || async {
        let rows = app.app.store.mail_attempts().await.unwrap();
        rows.len() == 1 && rows[0].0 >= 2 && rows[0].1
    })
    .await;
}

on_both!(kill_9_between_the_request_and_the_delivery_loses_nothing);
async fn kill_9_between_the_request_and_the_delivery_loses_nothing(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let pg = match engine {
        Engine::Postgres => Some(FreshPg::create().await),
        Engine::Sqlite => None,
    };
    let database = match &pg {
        Some(pg) => pg.url.clone(),
        None => dir.path().join("keyward.db").to_string_lossy().into_owned(),
    };
    let port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let start = || {
        Served::serve(
            ["--database", database.as_str()],
            [
                ("KEYWARD_DATA_DIR", dir.path().as_os_str()),
                ("KEYWARD_DB_MAX_CONNECTIONS", OsStr::new("5")),
                ("KEYWARD_SMTP_URL", OsStr::new(&smtp_url)),
                ("KEYWARD_MAIL_FROM", OsStr::new("portal@keyward.test")),
            ],
        )
    };
    let mut first = start();
    let created = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args([
            "accounts",
            "create",
            "--email",
            EMAIL,
            "--database",
            &database,
        ])
        .env("KEYWARD_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let agent = Agent {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: first.base.clone(),
    };
    let (status, _) = forgot(&agent, EMAIL).await;
    assert_eq!(status, StatusCode::OK);
    // Killed at once: the message is in the outbox (committed with the link), not sent (nothing listens).
    first.kill_9();
    let smtpd = Smtpd::start(port, &dir.path().join("mail")).await;
    let second = start();
    // The killed node held the mail lease: the new one takes it once it lapses (15 s).
    let message = one_message(&smtpd.maildir, Duration::from_secs(45)).await;
    assert!(message.contains("/login/reset?token=kwp_"), "{message}");
    // The link works on the restarted server, and neither start logged a reset token (nor the link's query).
    let path = &message[message.find("/login/reset?token=").unwrap()..];
    let path: String = path.chars().take_while(|c| !c.is_whitespace()).collect();
    let browser = Agent {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: second.base.clone(),
    };
    let (status, _) = reset(&browser, &path, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        first.log().iter().all(|l| !l.contains("kwp_")),
        "a reset token in the first log"
    );
    assert!(
        second.log().iter().all(|l| !l.contains("kwp_")),
        "a reset token in the second log"
    );
    drop(second);
}

both_engines!(without_email_the_cli_prints_a_reset_link, |app| {
    let id = account(&app, EMAIL, "P1").await;
    let agent = Agent::new(&app);
    let page = agent.get("/login/forgot").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("id=\"forgot-unavailable\"")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["accounts", "reset-link", &id, "--database", &app.database])
        .env("KEYWARD_DATA_DIR", app.dir.path())
        .env("KEYWARD_ISSUER", &app.base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("kwp_"));
    let path = link.trim_start_matches(&app.base).to_owned();
    assert!(path.starts_with("/login/reset?token=kwp_"), "{link}");
    let (status, _) = reset(&agent, &path, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let r = agent.login_with(EMAIL, NEW_PASSWORD, "/console").await;
    assert_eq!(location(&r), "/console");
    assert_eq!(agent.get(&path).await.status(), StatusCode::BAD_REQUEST);
    let missing = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args([
            "accounts",
            "reset-link",
            "acct_missing",
            "--database",
            &app.database,
        ])
        .env("KEYWARD_DATA_DIR", app.dir.path())
        .output()
        .unwrap();
    assert!(!missing.status.success());
});

/// A link from the Resets service, as `keyward accounts reset-link` makes it; its path and query.
async fn operator_link(app: &TestApp, id: &str) -> String {
    let actor = keyward::service::admin::Actor::cli();
    let url = app.app.resets.link_for(&actor, id).await.unwrap();
    url.trim_start_matches(&app.base).to_owned()
}

both_engines!(
    a_reset_link_expires_and_dies_with_a_password_change,
    |app| {
        let id = account(&app, EMAIL, "P1").await;
        let actor = keyward::service::admin::Actor::cli();
        // Expired after 30 minutes.
        let expiring = operator_link(&app, &id).await;
        let agent = Agent::new(&app);
        assert_eq!(agent.get(&expiring).await.status(), StatusCode::OK);
        app.clock.advance(30 * 60 + 1);
        assert_eq!(agent.get(&expiring).await.status(), StatusCode::BAD_REQUEST);

        // Replaced by a password change made another way (here, the operator's).
        let replaced = operator_link(&app, &id).await;
        let page = agent.get(&replaced).await.text().await.unwrap();
        app.app
            .accounts
            .account_update(
                &actor,
                &id,
                keyward::service::accounts::AccountInput {
                    password: Some("an operator's choice".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let r = agent
            .post(
                "/login/reset",
                &[
                    ("csrf", &hidden(&page, "csrf")),
                    ("token", &hidden(&page, "token")),
                    ("password", NEW_PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            agent
                .login_with(EMAIL, NEW_PASSWORD, "/console")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
        // The account's own password change in the console kills a link too.
        let replaced = operator_link(&app, &id).await;
        assert_eq!(agent.get(&replaced).await.status(), StatusCode::OK);
        app.app
            .sessions
            .change_password(
                &keyward::service::Actor::account(&id, "test".into()),
                &id,
                "an operator's choice",
                "quartz lantern orbit meadow",
                keyward::store::SessionOrigin {
                    id: "sess_test".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(agent.get(&replaced).await.status(), StatusCode::BAD_REQUEST);
        // A forged token, and none at all, get the same refusal, never a 500.
        for path in [
            "/login/reset?token=kwp_forged",
            "/login/reset",
            "/login/reset?token=%FF",
        ] {
            let status = agent.get(path).await.status();
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        }
        // Without SMTP, asking for a link by email says so.
        let page = agent.get("/login/forgot").await.text().await.unwrap();
        assert!(page.contains("forgot-unavailable"));
    }
);

both_engines!(the_admin_api_makes_a_reset_link, |app| {
    let id = account(&app, EMAIL, "P1").await;
    let admin = app.admin_token().await;
    let r = app
        .http
        .post(app.url(&format!("/admin/v1/accounts/{id}/reset-link")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["expires_in"], 1800);
    let path = body["link"]
        .as_str()
        .unwrap()
        .trim_start_matches(&app.base)
        .to_owned();
    let agent = Agent::new(&app);
    let (status, _) = reset(&agent, &path, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let missing = app
        .http
        .post(app.url("/admin/v1/accounts/acct_missing/reset-link"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
});
