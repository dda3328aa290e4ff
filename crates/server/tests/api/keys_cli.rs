//! Keys without secrets from the command line (`keyward public-jwk`, `clients create --jwks-file`, `clients
//! set-keys`) and at a `[[token_endpoint]]` alias that lists `private_key_jwt`, through the real binary and server.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::client_assertions::{API, BEARER, claims, key_client, refused, token_with};
use crate::harness::TestApp;
use crate::jws::TestKey;

/// The command line: `keyward public-jwk` turns the integrator's private key file into the JWK to register,
/// `clients create --jwks-file` registers it (no secret is printed), `clients set-keys` rotates, and the key file's
/// key signs assertions the running server accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_registers_and_rotates_public_keys() {
    use std::process::Command;
    use std::time::Duration;
    let app = TestApp::sqlite().await;
    app.resource(API, &["read"]).await;
    let dir = tempfile::tempdir().unwrap();
    let keyward = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(args)
            .args(["--database", &app.database])
            .env("KEYWARD_DATA_DIR", app.dir.path())
            .env("KEYWARD_ISSUER", &app.base)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    // Two private keys as an integrator keeps them (PKCS#8 PEM), and their public JWKs from the CLI.
    let keys = [TestKey::es256(), TestKey::es256()];
    let jwks: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let pem = path(&format!("key-{i}.pem"));
            std::fs::write(&pem, k.pkcs8_pem()).unwrap();
            let out = keyward(&["public-jwk", "--key", &pem, "--kid", &format!("k{i}")]);
            serde_json::from_str(&out).unwrap()
        })
        .collect();
    assert_eq!(
        jwks[0],
        keys[0]
            .jwk("k0")
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.insert("use".into(), json!("sig"));
                Value::Object(o)
            })
            .unwrap_or_default(),
        "the CLI prints the key's public JWK"
    );
    let file = |name: &str, v: &Value| {
        std::fs::write(path(name), v.to_string()).unwrap();
        path(name)
    };
    let out = keyward(&[
        "clients",
        "create",
        "--name",
        "cli-signer",
        "--resource",
        API,
        "--jwks-file",
        &file("one.json", &jwks[0]),
        "--json",
    ]);
    let created: Value = serde_json::from_str(&out).unwrap();
    assert!(created.get("client_secret").is_none(), "{created}");
    let id = created["client_id"].as_str().unwrap().to_owned();
    let token_url = app.url("/oauth2/token");
    let sign = |i: usize| {
        keys[i].jws(
            json!({"kid": format!("k{i}")}),
            &claims(&app, &id, &token_url),
        )
    };
    let status_with = |i: usize| {
        let a = sign(i);
        let app = &app;
        async move { token_with(app, &a).await.status() }
    };
    let second = Duration::from_secs(2);
    crate::harness::eventually(second, "the new client", || async {
        status_with(0).await == StatusCode::OK
    })
    .await;
    // Rotation through the CLI: both keys, then the second alone.
    keyward(&[
        "clients",
        "set-keys",
        &id,
        "--jwks-file",
        &file("both.json", &json!({"keys": jwks})),
    ]);
    crate::harness::eventually(second, "the second key", || async {
        status_with(1).await == StatusCode::OK
    })
    .await;
    keyward(&[
        "clients",
        "set-keys",
        &id,
        "--jwks-file",
        &file("two.json", &jwks[1]),
    ]);
    crate::harness::eventually(second, "the first key refused", || async {
        status_with(0).await == StatusCode::UNAUTHORIZED
    })
    .await;
}

/// A `[[token_endpoint]]` alias that lists `private_key_jwt` takes assertions naming its own URL, binds tokens to
/// a DPoP proof made for its URL, and refuses the methods it does not list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_that_allows_private_key_jwt_takes_assertions_for_its_url() {
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("keyward.toml");
    std::fs::write(
        &config,
        "[[token_endpoint]]\npath = \"/v1/token\"\nauth_methods = [\"private_key_jwt\"]\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("keyward.db").to_string_lossy().into_owned();
    let app = TestApp::launch(crate::harness::Launch {
        dir,
        database,
        config_file: Some(config),
        ..crate::harness::Launch::default()
    })
    .await;
    app.resource(API, &["read"]).await;
    let key = TestKey::eddsa();
    let id = key_client(&app, "alias-signer", json!({"keys": [key.jwk("k")]})).await;
    // The alias's public URL is the issuer's (here the configuration's default, as behind a proxy), not the
    // address the test reaches the server at.
    let meta: Value = app
        .get_json(&app.url("/.well-known/oauth-authorization-server"))
        .await;
    let alias = format!("{}/v1/token", meta["issuer"].as_str().unwrap());
    let dpop_key = TestKey::es256();
    let r = app
        .http
        .post(app.url("/v1/token"))
        .header(
            "DPoP",
            crate::dpop_issue::proof(&dpop_key, "POST", &alias, app.clock.now(), json!({})),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", BEARER),
            (
                "client_assertion",
                &key.jws(json!({"kid": "k"}), &claims(&app, &id, &alias)),
            ),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    // A secret client at the alias: its method is not one the alias lists.
    let (secret_id, secret) = app.client(json!({"name": "s", "resources": [API]})).await;
    let r = app
        .post_form(
            "/v1/token",
            Some((&secret_id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    refused(r).await;
}
