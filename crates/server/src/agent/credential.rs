//! What an `[api.NAME]` table authenticates with, read and checked: exactly one of a client secret (inline, from
//! the environment or a file), a private key file (`private_key_jwt`), a platform token file or GitHub Actions'
//! OIDC token (workload identity federation); and its DPoP key, if tokens are to be bound to one. Errors name the
//! key and never show a credential's value.

use std::path::PathBuf;

use keyward_client::source::Credential;
use keyward_client::{AssertionAlg, Secret, SigningKey};

/// Looks up an environment variable (the agent's `Env`, injected so that tests never touch the process's).
type Env = dyn Fn(&str) -> Option<String>;

/// The credential keys of one table, as written.
pub(super) struct Given {
    /// `client_secret`, `client_secret_env`, `client_secret_file`.
    pub(super) secret: (Option<String>, Option<String>, Option<PathBuf>),
    pub(super) private_key_file: Option<PathBuf>,
    pub(super) key_id: Option<String>,
    pub(super) assertion_alg: Option<String>,
    pub(super) assertion_file: Option<PathBuf>,
    pub(super) github_actions_audience: Option<String>,
    /// Whether the table sets `auth`, which only a secret has a use for.
    pub(super) auth: bool,
}

/// The kinds, as errors name them.
const KINDS: &str = "client_secret (or client_secret_env, client_secret_file), private_key_file, assertion_file, \
                     github_actions_audience";

/// The one credential the table gives; a private key file read now is added to `files` (a reload reads it again).
pub(super) fn choose(
    api: &str,
    given: Given,
    env: &Env,
    files: &mut Vec<PathBuf>,
) -> Result<Credential, String> {
    let at = |key: &str, why: &str| format!("api.{api}.{key}: {why}");
    let (inline, variable, file) = given.secret;
    let secret = inline.is_some() || variable.is_some() || file.is_some();
    let kinds = [
        secret,
        given.private_key_file.is_some(),
        given.assertion_file.is_some(),
        given.github_actions_audience.is_some(),
    ];
    match kinds.iter().filter(|k| **k).count() {
        1 => {}
        0 => return Err(format!("api.{api}: give a credential, one of {KINDS}")),
        _ => {
            return Err(format!(
                "api.{api}: give exactly one credential, one of {KINDS}"
            ));
        }
    }
    if given.private_key_file.is_none() {
        if given.key_id.is_some() {
            return Err(at("key_id", "only with private_key_file"));
        }
        if given.assertion_alg.is_some() {
            return Err(at("assertion_alg", "only with private_key_file"));
        }
    }
    if !secret && given.auth {
        return Err(at(
            "auth",
            "client_secret_basic and client_secret_post are for a client secret; the other credentials \
             send a client assertion in the body",
        ));
    }
    if secret {
        let value = read(api, "client_secret", (inline, variable, file), env, files)?;
        return Ok(Credential::Secret(Secret::new(value)));
    }
    if let Some(path) = given.private_key_file {
        let key_id = given.key_id.filter(|k| !k.is_empty()).ok_or_else(|| {
            at(
                "key_id",
                "required with private_key_file: the `kid` the server knows the key by",
            )
        })?;
        let alg = given
            .assertion_alg
            .as_deref()
            .map(|a| {
                AssertionAlg::from_name(a).ok_or_else(|| {
                    at(
                        "assertion_alg",
                        &format!("`{a}` is not one of ES256, PS256, RS256, EdDSA"),
                    )
                })
            })
            .transpose()?;
        let key = SigningKey::from_pem_file(&path, alg).map_err(|e| at("private_key_file", &e))?;
        files.push(path);
        return Ok(Credential::PrivateKey { key, key_id });
    }
    if let Some(path) = given.assertion_file {
        // Read on every token request by the source, not here: the platform rotates it. Only its absence at start
        // is worth saying now.
        if !path.exists() {
            return Err(at(
                "assertion_file",
                &format!("{} does not exist", path.display()),
            ));
        }
        return Ok(Credential::AssertionFile(path));
    }
    let audience = given.github_actions_audience.unwrap_or_default();
    if audience.is_empty() {
        return Err(at("github_actions_audience", "the value is empty"));
    }
    Credential::github_actions_with_env(audience, env)
        .map_err(|e| at("github_actions_audience", &e))
}

/// `dpop` and `dpop_key_file`: whether tokens are bound to a DPoP key, and the key when it is not generated.
pub(super) fn dpop(
    api: &str,
    dpop: Option<bool>,
    key_file: Option<PathBuf>,
) -> Result<(bool, Option<SigningKey>), String> {
    let on = dpop.unwrap_or(false);
    match key_file {
        None => Ok((on, None)),
        Some(_) if !on => Err(format!("api.{api}.dpop_key_file: only with dpop = true")),
        Some(path) => SigningKey::from_pem_file(&path, None)
            .map(|k| (true, Some(k)))
            .map_err(|e| format!("api.{api}.dpop_key_file: {e}")),
    }
}

/// Reads one value from the one place the table names: the file itself, an environment variable, or a file
/// (whose trailing newline is not part of it, and which a reload reads again). Errors never show the value.
pub(super) fn read(
    api: &str,
    key: &str,
    (inline, variable, file): (Option<String>, Option<String>, Option<PathBuf>),
    env: &Env,
    files: &mut Vec<PathBuf>,
) -> Result<String, String> {
    let (from, value) = match (inline, variable, file) {
        (Some(v), None, None) => (key.to_owned(), v),
        (None, Some(var), None) => {
            let from = format!("{key}_env");
            let v = env(&var).ok_or_else(|| {
                format!("api.{api}.{from}: the environment variable `{var}` is not set")
            })?;
            (from, v)
        }
        (None, None, Some(path)) => {
            let from = format!("{key}_file");
            let v = std::fs::read_to_string(&path)
                .map_err(|e| format!("api.{api}.{from}: cannot read {}: {e}", path.display()))?;
            files.push(path);
            (from, v.trim_end_matches(['\n', '\r']).to_owned())
        }
        _ => {
            return Err(format!(
                "api.{api}.{key}: give exactly one of {key}, {key}_env and {key}_file"
            ));
        }
    };
    if value.is_empty() {
        return Err(format!("api.{api}.{from}: the value is empty"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    fn given() -> Given {
        Given {
            secret: (None, None, None),
            private_key_file: None,
            key_id: None,
            assertion_alg: None,
            assertion_file: None,
            github_actions_audience: None,
            auth: false,
        }
    }

    fn dir() -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("keyward-agent-credential-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A P-256 key in a PEM PKCS#8 file.
    fn key_file(dir: &std::path::Path) -> PathBuf {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        use base64::Engine;
        let der = EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let path = dir.join("key.pem");
        std::fs::write(
            &path,
            format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        path
    }

    #[test]
    fn each_kind_alone_and_its_keys_checked() {
        let dir = dir();
        let key = key_file(&dir);
        let mut files = Vec::new();
        let c = choose(
            "a",
            Given {
                private_key_file: Some(key.clone()),
                key_id: Some("k1".into()),
                ..given()
            },
            &none,
            &mut files,
        )
        .unwrap();
        assert!(matches!(c, Credential::PrivateKey { ref key_id, .. } if key_id == "k1"));
        assert_eq!(files, vec![key.clone()], "a reload reads the key again");
        let token = dir.join("token");
        std::fs::write(&token, "a.b.c").unwrap();
        let c = choose(
            "a",
            Given {
                assertion_file: Some(token.clone()),
                ..given()
            },
            &none,
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(c, Credential::AssertionFile(token.clone()));
        let env = |n: &str| Some(format!("https://gh.example/{n}"));
        let c = choose(
            "a",
            Given {
                github_actions_audience: Some("api://kw".into()),
                ..given()
            },
            &env,
            &mut Vec::new(),
        )
        .unwrap();
        assert!(
            matches!(c, Credential::GithubActions { ref audience, .. } if audience == "api://kw")
        );

        let cases = [
            (given(), "api.a: give a credential, one of client_secret"),
            (
                Given {
                    secret: (Some("s".into()), None, None),
                    assertion_file: Some(token.clone()),
                    ..given()
                },
                "api.a: give exactly one credential",
            ),
            (
                Given {
                    private_key_file: Some(key.clone()),
                    ..given()
                },
                "api.a.key_id: required with private_key_file",
            ),
            (
                Given {
                    private_key_file: Some(key.clone()),
                    key_id: Some("k".into()),
                    assertion_alg: Some("HS256".into()),
                    ..given()
                },
                "api.a.assertion_alg: `HS256` is not one of ES256, PS256, RS256, EdDSA",
            ),
            (
                Given {
                    private_key_file: Some(key.clone()),
                    key_id: Some("k".into()),
                    assertion_alg: Some("RS256".into()),
                    ..given()
                },
                "api.a.private_key_file: ",
            ),
            (
                Given {
                    private_key_file: Some(token.clone()),
                    key_id: Some("k".into()),
                    ..given()
                },
                "no `-----BEGIN PRIVATE KEY-----` block",
            ),
            (
                Given {
                    secret: (Some("s".into()), None, None),
                    key_id: Some("k".into()),
                    ..given()
                },
                "api.a.key_id: only with private_key_file",
            ),
            (
                Given {
                    assertion_file: Some(token.clone()),
                    auth: true,
                    ..given()
                },
                "api.a.auth: ",
            ),
            (
                Given {
                    assertion_file: Some(dir.join("missing")),
                    ..given()
                },
                "api.a.assertion_file: ",
            ),
            (
                Given {
                    github_actions_audience: Some("x".into()),
                    ..given()
                },
                "ACTIONS_ID_TOKEN_REQUEST_URL` is not set",
            ),
        ];
        for (g, expected) in cases {
            let e = choose("a", g, &none, &mut Vec::new()).unwrap_err();
            assert!(e.contains(expected), "{e}\nexpected {expected}");
        }
        assert_eq!(dpop("a", None, None).unwrap(), (false, None));
        assert_eq!(dpop("a", Some(true), None).unwrap(), (true, None));
        assert!(
            dpop("a", Some(true), Some(key.clone()))
                .unwrap()
                .1
                .is_some()
        );
        assert!(
            dpop("a", None, Some(key))
                .unwrap_err()
                .contains("only with dpop = true")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
