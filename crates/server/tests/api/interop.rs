//! Interoperability with an independent library: an integrator written in Python against PyJWT and cryptography
//! (tests/api/interop/pyjwt_client.py, run in the virtualenv `scripts/test` makes) makes its own keys, signs its
//! `private_key_jwt` assertions and DPoP proofs, and computes the key's thumbprint itself; Keyward accepts them and
//! binds the token to that thumbprint. Fails (never skips) when the Python environment is missing.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::claims;

const API: &str = "https://api.example.com";

/// Runs the Python integrator with `args`; returns what it printed, as JSON.
fn python(args: &[&str]) -> Value {
    let exe = std::env::var("PYJWT_PYTHON").unwrap_or_else(|_| {
        panic!(
            "PYJWT_PYTHON is not set: run the tests with `bash scripts/test`, which installs PyJWT"
        )
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/api/interop/pyjwt_client.py"
    );
    let out = Command::new(exe).arg(script).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "pyjwt_client.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

both_engines!(a_python_integrator_authenticates_with_pyjwt, |app| {
    app.resource(API, &["read"]).await;
    let dir = tempfile::tempdir().unwrap();
    let url = app.url("/oauth2/token");
    for (alg, dpop) in [
        ("ES256", Some("EdDSA")),
        ("PS256", Some("ES256")),
        ("EdDSA", None),
        ("RS256", Some("PS256")),
    ] {
        let keyfile = dir.path().join(format!("{alg}.pem"));
        let keyfile = keyfile.to_str().unwrap();
        let kid = format!("py-{alg}");
        let jwk = python(&["keygen", alg, &kid, keyfile]);
        let (status, body) = app
            .admin_call(
                reqwest::Method::POST,
                "/clients",
                Some(json!({"name": format!("python-{alg}"), "resources": [API],
                            "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["client_id"].as_str().unwrap();
        let mut args = vec!["token", &url, id, keyfile, &kid, alg];
        if let Some(d) = dpop {
            args.push(d);
        }
        let out = python(&args);
        assert_eq!(out["status"], 200, "{alg}: {out}");
        let token = out["body"]["access_token"].as_str().unwrap();
        match dpop {
            Some(_) => {
                assert_eq!(out["body"]["token_type"], "DPoP", "{out}");
                assert_eq!(
                    claims(token)["cnf"]["jkt"],
                    out["jkt"],
                    "{alg}: the thumbprint PyJWT's side computed"
                );
            }
            None => assert_eq!(out["body"]["token_type"], "Bearer"),
        }
    }
});
