//! The `keyward` binary: admin commands on the same database as a running server, first-start output,
//! configuration errors.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_engines;
use crate::harness::TestApp;

fn keyward(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .args(["--database", &app.database])
        .env("KEYWARD_DATA_DIR", app.dir.path())
        .env("KEYWARD_ISSUER", &app.base)
        .output()
        .expect("run keyward")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "keyward failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// Retries a token request until it gives `want`, for at most one second (the propagation bound).
async fn within_a_second(app: &TestApp, id: &str, secret: &str, want: StatusCode) {
    let start = Instant::now();
    loop {
        let status = app.token(id, secret, &[]).await.status();
        if status == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still {status} after 1 s, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

both_engines!(
    cli_changes_reach_the_running_server_within_a_second,
    |app| {
        let out = keyward(
            &app,
            &[
                "resources",
                "create",
                "--identifier",
                "https://api.example.com",
                "--name",
                "API",
                "--scope",
                "read",
                "--access-token-ttl",
                "30m",
                "--json",
            ],
        );
        assert_eq!(json_of(&out)[0]["access_token_ttl"], 1_800);
        let created = json_of(&keyward(
            &app,
            &[
                "clients",
                "create",
                "--name",
                "cli client",
                "--resource",
                "https://api.example.com",
                "--scope",
                "read",
                "--json",
            ],
        ));
        let id = created["client_id"].as_str().unwrap().to_owned();
        let secret = created["client_secret"].as_str().unwrap().to_owned();
        within_a_second(&app, &id, &secret, StatusCode::OK).await;

        assert!(keyward(&app, &["clients", "disable", &id]).status.success());
        within_a_second(&app, &id, &secret, StatusCode::UNAUTHORIZED).await;
        assert!(keyward(&app, &["clients", "enable", &id]).status.success());
        within_a_second(&app, &id, &secret, StatusCode::OK).await;

        let rotated = json_of(&keyward(
            &app,
            &[
                "clients",
                "rotate-secret",
                &id,
                "--retire-old-after",
                "0",
                "--json",
            ],
        ));
        let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
        // The CLI stamped "now" from the wall clock; bring the server's fixed clock past it.
        app.clock.advance(5);
        within_a_second(&app, &id, &new_secret, StatusCode::OK).await;
        within_a_second(&app, &id, &secret, StatusCode::UNAUTHORIZED).await;

        let list = json_of(&keyward(&app, &["clients", "list", "--json"]));
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|c| c["client_id"] == id.as_str())
        );
        let shown = json_of(&keyward(&app, &["clients", "show", &id, "--json"]));
        assert_eq!(shown["secrets"].as_array().unwrap().len(), 2);
        assert!(
            !shown.to_string().contains(&new_secret),
            "a secret is never shown again"
        );
        // --shell output evaluates in a POSIX shell to the same credentials, whatever the client id holds.
        let out = keyward(
            &app,
            &[
                "clients",
                "create",
                "--name",
                "q",
                "--client-id",
                "it's a $key",
                "--resource",
                "https://api.example.com",
                "--shell",
            ],
        );
        assert!(out.status.success());
        let script = format!(
            "{}\nprintf '%s|%s' \"$CLIENT_ID\" \"$CLIENT_SECRET\"",
            String::from_utf8_lossy(&out.stdout)
        );
        let evaluated = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        let text = String::from_utf8_lossy(&evaluated.stdout).into_owned();
        let (qid, qsecret) = text.split_once('|').unwrap();
        assert_eq!(qid, "it's a $key");
        within_a_second(&app, qid, qsecret, StatusCode::OK).await;
        let human = keyward(&app, &["clients", "list"]);
        assert!(String::from_utf8_lossy(&human.stdout).contains("cli client"));
        assert_eq!(
            json_of(&keyward(&app, &["resources", "list", "--json"]))
                .as_array()
                .unwrap()
                .len(),
            2
        );

        let keys = json_of(&keyward(&app, &["keys", "list", "--json"]));
        assert_eq!(keys.as_array().unwrap().len(), 3);
        let rotated = json_of(&keyward(
            &app,
            &["keys", "rotate", "--alg", "EdDSA", "--json"],
        ));
        let kid = rotated[0]["kid"].as_str().unwrap().to_owned();
        let start = Instant::now();
        loop {
            let jwks: Value = app.get_json(&app.url("/oauth2/jwks")).await;
            if jwks.to_string().contains(&kid) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "rotated key not published within 1 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        assert!(keyward(&app, &["clients", "delete", &id]).status.success());
        within_a_second(&app, &id, &new_secret, StatusCode::UNAUTHORIZED).await;
        let missing = keyward(&app, &["clients", "show", &id]);
        assert!(!missing.status.success());
        // Said as the admin API says it: its code, then its words.
        assert!(
            String::from_utf8_lossy(&missing.stderr)
                .contains("keyward: not_found: client not found"),
            "{}",
            String::from_utf8_lossy(&missing.stderr)
        );
    }
);

#[test]
fn first_start_prints_the_admin_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["keys", "list"])
            .env("KEYWARD_DATA_DIR", dir.path())
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = String::from_utf8_lossy(&first.stderr);
    assert!(
        text.contains("SHOWN ONCE") && text.contains("client_secret: kw_sk_"),
        "{text}"
    );
    assert!(dir.path().join("keyward.db").exists() && dir.path().join("keyward.secret").exists());
    let second = run();
    assert!(!String::from_utf8_lossy(&second.stderr).contains("kw_sk_"));
}

#[test]
fn bad_configuration_stops_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve"])
        .env("KEYWARD_DATA_DIR", dir.path())
        .env("KEYWARD_MAX_ACCESS_TOKEN_TTL", "forever")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_access_token_ttl"));
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--listen", "localhost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`listen`"));
}

#[test]
fn config_example_and_migrate() {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("# listen = \"127.0.0.1:8080\""));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.toml");
    std::fs::write(&path, text.as_bytes()).unwrap();
    let db = dir.path().join("m.db");
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args([
            "migrate",
            "--config",
            path.to_str().unwrap(),
            "--database",
            db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists());
}

both_engines!(
    an_import_keeps_ids_and_secrets_and_is_all_or_nothing,
    |app| {
        app.resource("https://api.example.com", &["read", "write"])
            .await;
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, lines: &[&str]| {
            let path = dir.path().join(name);
            std::fs::write(&path, lines.join("\n")).unwrap();
            path.to_string_lossy().into_owned()
        };
        let good = write(
            "good.jsonl",
            &[
                r#"{"client_id":"legacy-1","name":"Legacy one","client_secret":"Lg1-9f86d081884c7d659a2feaa0c55a","resources":["https://api.example.com"],"scopes":["read"]}"#,
                "",
                r#"{"client_id":"legacy-2","name":"Legacy two","client_secret":"Lg2-60303ae22b998861bce3b28f33ee","resources":["https://api.example.com"]}"#,
            ],
        );
        let out = keyward(&app, &["clients", "import", &good]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "imported 2 clients"
        );
        // The running server reloads its clients from the change feed and accepts the secrets they came with.
        within_a_second(
            &app,
            "legacy-1",
            "Lg1-9f86d081884c7d659a2feaa0c55a",
            StatusCode::OK,
        )
        .await;
        within_a_second(
            &app,
            "legacy-2",
            "Lg2-60303ae22b998861bce3b28f33ee",
            StatusCode::OK,
        )
        .await;
        let scoped = app
            .access_token(
                "legacy-1",
                "Lg1-9f86d081884c7d659a2feaa0c55a",
                &[("scope", "read")],
            )
            .await;
        assert_eq!(crate::harness::claims(&scoped)["scope"], "read");
        assert_eq!(
            app.token("legacy-1", "Lg2-60303ae22b998861bce3b28f33ee", &[])
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
        let (_, audit) = app.admin_call(reqwest::Method::GET, "/audit", None).await;
        assert!(
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "clients.import" && e["detail"] == r#"{"count":2}"#),
            "{audit}"
        );

        // A bad line fails the whole import and names the line; the good line before it is not written.
        for (lines, expect) in [
            (
                vec![
                    r#"{"client_id":"new-1","name":"N","client_secret":"Nw1-fd61a03af4f77d870fc21e05e7e8"}"#,
                    r#"{"client_id":"new-2","name":"N","client_secret":"short"}"#,
                ],
                "line 2: client_secret: must be 16 to 256 characters",
            ),
            (
                vec![
                    r#"{"client_id":"new-1","name":"N","client_secret":"Nw1-fd61a03af4f77d870fc21e05e7e8"}"#,
                    r#"{"client_id":"new-3","name":"N","client_secret":"Nw3-e7f6c011776e8db7cd330b54174f","resources":["https://nowhere.example"]}"#,
                ],
                "line 2: resources",
            ),
            (
                vec![
                    r#"{"client_id":"new-1","name":"N","client_secret":"Nw1-fd61a03af4f77d870fc21e05e7e8"}"#,
                    r#"{"client_id":"new-1","name":"N","client_secret":"Nw1-fd61a03af4f77d870fc21e05e7e8"}"#,
                ],
                "line 2: client_id: the same id as line 1",
            ),
            (
                vec![
                    r#"{"client_id":"new-1","name":"N","client_secret":"Nw1-fd61a03af4f77d870fc21e05e7e8"}"#,
                    r#"{"client_id":"legacy-2","name":"N","client_secret":"Nw2-a4e624d686e03ed2767c0abd85c1"}"#,
                ],
                "exists already; nothing was imported",
            ),
        ] {
            let file = write("bad.jsonl", &lines);
            let out = keyward(&app, &["clients", "import", &file]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains(expect),
                "{expect}: {err}"
            );
            let (status, _) = app
                .admin_call(reqwest::Method::GET, "/clients/new-1", None)
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{expect}");
        }
    }
);

/// Whether the admin API answers a client's token with `want`.
async fn admin_api_answers(app: &TestApp, id: &str, secret: &str, want: StatusCode) -> bool {
    let r = app.token(id, secret, &[]).await;
    if r.status() != StatusCode::OK {
        return false;
    }
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .bearer(reqwest::Method::GET, &app.url("/admin/v1/clients"), &token)
        .await;
    r.status() == want
}

both_engines!(the_cli_brings_a_locked_out_admin_api_back, |app| {
    let (me, secret) = (app.admin.client_id.clone(), app.admin.client_secret.clone());
    let limit = Duration::from_secs(2);
    // Locked out in a way the API refuses: the admin resource lost its admin scope (a manual edit of the database).
    let mut tx = app.app.store.begin().await.unwrap();
    let mut row = tx.resource_get("urn:keyward:admin", true).await.unwrap();
    row.scopes = "keyward:admin:read".into();
    tx.resource_update(&row).await.unwrap();
    tx.change("resource", &row.id, app.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    crate::harness::eventually(limit, "the admin API refuses", || {
        admin_api_answers(&app, &me, &secret, StatusCode::FORBIDDEN)
    })
    .await;
    // The way back: restore the admin resource's scopes.
    let restored = json_of(&keyward(&app, &["resources", "restore-admin", "--json"]));
    let scopes = restored[0]["scopes"].as_array().unwrap();
    assert!(scopes.contains(&"keyward:admin".into()), "{restored}");
    crate::harness::eventually(limit, "the admin API answers again", || {
        admin_api_answers(&app, &me, &secret, StatusCode::OK)
    })
    .await;
    // Run again, it changes nothing.
    let out = keyward(&app, &["resources", "restore-admin", "--json"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing changed"));
    // The only admin client deleted (the CLI may; the API refuses its caller): a new one from the CLI.
    assert!(keyward(&app, &["clients", "delete", &me]).status.success());
    let made = json_of(&keyward(
        &app,
        &[
            "clients",
            "create",
            "--name",
            "admin again",
            "--resource",
            "urn:keyward:admin",
            "--scope",
            "keyward:admin",
            "--json",
        ],
    ));
    let (id, secret) = (
        made["client_id"].as_str().unwrap().to_owned(),
        made["client_secret"].as_str().unwrap().to_owned(),
    );
    crate::harness::eventually(limit, "the new admin client is let in", || {
        admin_api_answers(&app, &id, &secret, StatusCode::OK)
    })
    .await;
});

both_engines!(a_client_that_could_get_no_token_is_not_made, |app| {
    // One API: the plainest `clients create` gets it, and a token.
    app.resource("https://api.example.com", &["read"]).await;
    let made = json_of(&keyward(
        &app,
        &["clients", "create", "--name", "plain", "--json"],
    ));
    assert_eq!(
        made["resources"],
        serde_json::json!(["https://api.example.com"])
    );
    let (id, secret) = (
        made["client_id"].as_str().unwrap().to_owned(),
        made["client_secret"].as_str().unwrap().to_owned(),
    );
    within_a_second(&app, &id, &secret, StatusCode::OK).await;

    // Two APIs and no default: refused, naming both; nothing is created.
    app.resource("https://other.example.com", &["read"]).await;
    let out = keyward(
        &app,
        &["clients", "create", "--name", "ambiguous", "--json"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("https://api.example.com") && err.contains("https://other.example.com"),
        "{err}"
    );
    let (_, listed) = app
        .admin_call(reqwest::Method::GET, "/clients?q=ambiguous", None)
        .await;
    assert_eq!(listed["items"], serde_json::json!([]), "{listed}");
    let (status, body) = app
        .admin_call(
            reqwest::Method::POST,
            "/clients",
            Some(serde_json::json!({"name": "ambiguous"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A client deliberately allowed no resource is told exactly that at the token endpoint.
    let (none, none_secret) = app
        .client(serde_json::json!({"name": "nothing", "resources": []}))
        .await;
    let r = app.token(&none, &none_secret, &[]).await;
    let e = crate::harness::assert_error(r, StatusCode::BAD_REQUEST, "invalid_target").await;
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("allowed no resource"),
        "{e}"
    );
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plainest_clients_create_works_on_every_example() {
    // Each example's documented request, with a client made this plain way, is replayed in examples.rs.
    for (example, resource) in [
        ("walley", "705798e0-8cef-427c-ae00-6023deba29af"),
        ("wll", "staging.wlloyalty.net"),
        ("walmart-marketplace", "https://marketplace.walmartapis.com"),
        (
            "walmart-orders-hub",
            "https://developer.api.walmart.com/api-proxy/service/orders-hub",
        ),
        (
            "walmart-1p-supplier",
            "https://api-gateway.walmart.com/1p-supplier",
        ),
    ] {
        let app = TestApp::example(example, crate::harness::Engine::Sqlite).await;
        let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../examples/{example}.toml"));
        let made = json_of(&keyward(
            &app,
            &[
                "--config",
                config.to_str().unwrap(),
                "clients",
                "create",
                "--name",
                "Newcomer",
                "--json",
            ],
        ));
        assert_eq!(
            made["resources"],
            serde_json::json!([resource]),
            "{example}"
        );
        let (id, secret) = (
            made["client_id"].as_str().unwrap(),
            made["client_secret"].as_str().unwrap(),
        );
        within_a_second(&app, id, secret, StatusCode::OK).await;
    }
}
