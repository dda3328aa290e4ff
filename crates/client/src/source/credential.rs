//! [`Credential`]: how a [`TokenSource`](super::TokenSource) proves who it is, and what each kind puts in one token
//! request: a client secret (RFC 6749 §2.3.1), a `private_key_jwt` assertion signed afresh (RFC 7523 §2.2), or a
//! platform's own token sent as the assertion (workload identity federation), read from a file on every request
//! or fetched from GitHub Actions' OIDC endpoint. Not the request itself: that is `request.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use keyward_core::assertion::AssertionAlg;
use serde_json::{Map, Value, json};

use crate::fetch::HttpClient;
use crate::secret::Secret;
use crate::signing::{SigningKey, random_id};

/// How long a signed client assertion lives: one request's worth (the server allows at most five minutes).
pub const ASSERTION_LIFETIME: i64 = 60;
/// The largest platform token read, from a file or from GitHub.
const MAX_PLATFORM_TOKEN: usize = 64 * 1024;
/// The variables GitHub Actions sets in a job with `permissions: id-token: write`.
pub const GITHUB_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// The bearer token for [`GITHUB_URL_VAR`]'s endpoint.
pub const GITHUB_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// What a client authenticates with at the token endpoint: exactly one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A shared secret, sent where the dialect says (`client_secret_basic` or `client_secret_post`, RFC 6749
    /// §2.3.1).
    Secret(Secret),
    /// `private_key_jwt` (RFC 7523 §2.2, RFC 7521 §4.2): a fresh assertion per request, signed with `key`, whose
    /// header names `key_id` as its `kid`.
    PrivateKey {
        /// The private key (PEM PKCS#8: P-256, Ed25519 or RSA).
        key: SigningKey,
        /// The `kid` the server knows the public key by.
        key_id: String,
    },
    /// Workload identity federation from a file: a platform's token (a Kubernetes projected service-account
    /// token) sent as the client assertion, read again for every request since the platform rotates it.
    AssertionFile(PathBuf),
    /// Workload identity federation on GitHub Actions: a fresh OIDC token per request from the job's token
    /// endpoint, for `audience`.
    GithubActions {
        /// `$ACTIONS_ID_TOKEN_REQUEST_URL` (it carries a query already).
        request_url: String,
        /// `$ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
        request_token: Secret,
        /// The `aud` the token must carry: what the token service's federated credential expects.
        audience: String,
    },
}

impl Credential {
    /// `private_key_jwt` with the key of a PEM PKCS#8 file (see [`SigningKey::from_pem_file`]).
    pub fn private_key_file(
        path: &Path,
        key_id: impl Into<String>,
        alg: Option<AssertionAlg>,
    ) -> Result<Self, String> {
        Ok(Credential::PrivateKey {
            key: SigningKey::from_pem_file(path, alg)?,
            key_id: key_id.into(),
        })
    }

    /// GitHub Actions federation from the job's environment (`ACTIONS_ID_TOKEN_REQUEST_URL` and
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, set when the workflow grants `id-token: write`).
    pub fn github_actions_from_env(audience: impl Into<String>) -> Result<Self, String> {
        Self::github_actions_with_env(audience, &|name| std::env::var(name).ok())
    }

    /// As [`github_actions_from_env`](Self::github_actions_from_env), with the variables looked up by `env`.
    pub fn github_actions_with_env(
        audience: impl Into<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let missing = |var: &str| {
            format!(
                "the environment variable `{var}` is not set: GitHub Actions sets it only in a job whose \
                 workflow has `permissions: id-token: write`"
            )
        };
        let request_url = env(GITHUB_URL_VAR)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing(GITHUB_URL_VAR))?;
        let request_token = env(GITHUB_TOKEN_VAR)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing(GITHUB_TOKEN_VAR))?;
        Ok(Credential::GithubActions {
            request_url,
            request_token: Secret::new(request_token),
            audience: audience.into(),
        })
    }

    /// Whether this kind is a shared secret (so the dialect's `auth` applies).
    pub fn is_secret(&self) -> bool {
        matches!(self, Credential::Secret(_))
    }

    /// What is wrong with it before any request is sent, if anything.
    pub(crate) fn check(&self) -> Result<(), String> {
        match self {
            Credential::Secret(_) => Ok(()),
            Credential::PrivateKey { key_id, .. } if key_id.is_empty() => {
                Err("key id: must not be empty (the server picks the public key by it)".into())
            }
            Credential::PrivateKey { .. } => Ok(()),
            Credential::AssertionFile(p) if p.as_os_str().is_empty() => {
                Err("assertion file: must not be empty".into())
            }
            Credential::AssertionFile(_) => Ok(()),
            Credential::GithubActions {
                request_url,
                audience,
                ..
            } => {
                let uri: hyper::Uri = request_url.parse().map_err(|_| {
                    format!("GitHub Actions token URL `{request_url}` is not a URL")
                })?;
                if !matches!(uri.scheme_str(), Some("https" | "http")) {
                    return Err(format!(
                        "GitHub Actions token URL `{request_url}`: must be an https:// URL"
                    ));
                }
                if audience.is_empty() {
                    return Err("GitHub Actions audience: must not be empty".into());
                }
                Ok(())
            }
        }
    }
}

/// Why a credential could not be presented for a request.
#[derive(Debug)]
pub(crate) enum Unpresentable {
    /// Worth another try after a backoff: a file mid-rotation, GitHub busy or unreachable.
    Retry(String),
    /// Not worth a try until something changes; `status` is the platform's answer, 0 when there was none.
    Refused {
        status: u16,
        error: String,
        description: String,
    },
}

/// What one token request carries to authenticate.
#[derive(Debug)]
pub(crate) enum Presented {
    /// The client secret, for the dialect to place.
    Secret(Secret),
    /// A JWT for `client_assertion` (RFC 7521 §4.2).
    Assertion(String),
}

/// What the credential puts in the next token request: a fresh assertion, the file's current token, a token just
/// fetched from GitHub. A failure is the answer to act on (retry: a file mid-rotation, GitHub busy; refused:
/// GitHub refused the job).
pub(crate) async fn present(
    credential: &Credential,
    http: &HttpClient,
    client_id: &str,
    token_url: &str,
    timeout: Duration,
    now: i64,
) -> Result<Presented, Unpresentable> {
    match credential {
        Credential::Secret(s) => Ok(Presented::Secret(s.clone())),
        Credential::PrivateKey { key, key_id } => {
            client_assertion(key, key_id, client_id, token_url, now)
                .map(Presented::Assertion)
                .map_err(refused)
        }
        Credential::AssertionFile(path) => read_token_file(path).await.map(Presented::Assertion),
        Credential::GithubActions {
            request_url,
            request_token,
            audience,
        } => github_token(http, request_url, request_token, audience, timeout)
            .await
            .map(Presented::Assertion),
    }
}

/// A `private_key_jwt` client assertion (RFC 7523 §3): `iss` and `sub` the client, `aud` the token endpoint, a
/// `jti` of 128 random bits, `iat` now and `exp` a minute on.
pub(crate) fn client_assertion(
    key: &SigningKey,
    key_id: &str,
    client_id: &str,
    token_url: &str,
    now: i64,
) -> Result<String, String> {
    let mut header = Map::new();
    header.insert("typ".into(), Value::from("JWT"));
    header.insert("kid".into(), Value::from(key_id));
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "jti": random_id(16),
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    });
    key.sign(header, &claims)
}

/// The platform token in `path`, read now: the platform replaces the file before the old token expires, so a copy
/// kept from start would run out.
async fn read_token_file(path: &Path) -> Result<String, Unpresentable> {
    let shown = path.display();
    // A file missing or empty for a moment (the kubelet swaps it atomically, but a volume may lag) is retried with
    // backoff rather than taken as a refusal.
    let owned = path.to_owned();
    // A small file, but a read can still block (a network volume): off the runtime's threads.
    let read = tokio::task::spawn_blocking(move || std::fs::read(owned))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let text = read.map_err(|e| Unpresentable::Retry(format!("assertion file {shown}: {e}")))?;
    if text.len() > MAX_PLATFORM_TOKEN {
        return Err(refused(format!(
            "assertion file {shown}: larger than {MAX_PLATFORM_TOKEN} bytes; not a token"
        )));
    }
    let token = String::from_utf8_lossy(&text).trim().to_owned();
    if token.is_empty() {
        return Err(Unpresentable::Retry(format!(
            "assertion file {shown}: empty"
        )));
    }
    if token.split('.').count() != 3 {
        return Err(refused(format!(
            "assertion file {shown}: not a JWT (three dot-separated parts)"
        )));
    }
    Ok(token)
}

/// An OIDC token from GitHub Actions' endpoint for `audience`: `GET <url>&audience=<aud>` with the request token
/// as a bearer, answered `{"value": "<jwt>"}`.
async fn github_token(
    http: &HttpClient,
    request_url: &str,
    request_token: &Secret,
    audience: &str,
    timeout: Duration,
) -> Result<String, Unpresentable> {
    let joiner = if request_url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{request_url}{joiner}audience={}",
        keyward_core::basic::form_encode(audience)
    );
    let mut bearer =
        hyper::header::HeaderValue::try_from(format!("Bearer {}", request_token.expose()))
            .map_err(|_| {
                refused("the GitHub Actions request token cannot be sent in a header".into())
            })?;
    bearer.set_sensitive(true);
    let request = Request::get(&url)
        .header(AUTHORIZATION, bearer)
        .header(ACCEPT, "application/json")
        .header(
            USER_AGENT,
            concat!("keyward-client/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::<Bytes>::default())
        .map_err(|e| refused(format!("GitHub Actions token URL: {e}")))?;
    // The URL's query names the job's run; logs and errors show the endpoint only.
    let shown = request_url.split('?').next().unwrap_or(request_url);
    let retry = Unpresentable::Retry;
    let deadline = super::timing::later(tokio::time::Instant::now(), timeout);
    let response = match tokio::time::timeout_at(deadline, http.request(request)).await {
        Err(_) => return Err(retry(format!("{shown}: no answer within {timeout:?}"))),
        Ok(Err(e)) => return Err(retry(format!("{shown}: {e}"))),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    let body = match tokio::time::timeout_at(
        deadline,
        Limited::new(response.into_body(), MAX_PLATFORM_TOKEN).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        _ => return Err(retry(format!("{shown}: the answer could not be read"))),
    };
    if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
        return Err(retry(format!("{shown}: status {status}")));
    }
    if !status.is_success() {
        return Err(Unpresentable::Refused {
            status: status.as_u16(),
            error: "federated_token_refused".into(),
            description: format!(
                "GitHub Actions' OIDC endpoint answered {status}: the workflow needs `permissions: id-token: write`"
            ),
        });
    }
    serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("value").and_then(Value::as_str).map(str::to_owned))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| retry(format!("{shown}: the answer has no `value`")))
}

fn refused(why: String) -> Unpresentable {
    Unpresentable::Refused {
        status: 0,
        error: "invalid_request".into(),
        description: why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PublicKey;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    const URL: &str = "https://auth.example.com/oauth2/token";

    fn part(jwt: &str, i: usize) -> Value {
        serde_json::from_slice(&B64.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn assertions_pass_the_servers_check_and_verify_for_every_key_type() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let rsa = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&rsa)
            .unwrap();
        let ec =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let ed = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let keys = [
            SigningKey::from_pkcs8(ec.as_ref(), None).unwrap(),
            SigningKey::from_pkcs8(ed.as_ref(), None).unwrap(),
            SigningKey::from_pkcs8(rsa.as_ref(), None).unwrap(),
            SigningKey::from_pkcs8(rsa.as_ref(), Some(AssertionAlg::RS256)).unwrap(),
        ];
        let now = 1_800_000_000;
        for key in keys {
            let jwt = client_assertion(&key, "key-1", "client-7", URL, now).unwrap();
            let header = part(&jwt, 0);
            assert_eq!(header["typ"], "JWT");
            assert_eq!(header["kid"], "key-1");
            assert_eq!(header["alg"], key.alg().name());
            let claims = part(&jwt, 1);
            assert_eq!(
                (claims["iat"].as_i64(), claims["exp"].as_i64()),
                (Some(now), Some(now + 60))
            );
            assert_eq!(claims["aud"], URL);
            assert!(B64.decode(claims["jti"].as_str().unwrap()).unwrap().len() >= 16);
            let checked = keyward_core::assertion::check(&jwt, "client-7", &[URL], now).unwrap();
            assert_eq!(checked.alg, key.alg());
            assert_eq!(checked.kid.as_deref(), Some("key-1"));
            let public = PublicKey::from_jwk(&key.public_jwk_for("key-1")).unwrap();
            assert!(public.verify(checked.signing_input.as_bytes(), &checked.signature));
            // Another client, another server, or a minute and more later: refused.
            assert!(keyward_core::assertion::check(&jwt, "client-8", &[URL], now).is_err());
            assert!(
                keyward_core::assertion::check(&jwt, "client-7", &["https://other"], now).is_err()
            );
            assert!(keyward_core::assertion::check(&jwt, "client-7", &[URL], now + 120).is_err());
            let again = client_assertion(&key, "key-1", "client-7", URL, now).unwrap();
            assert_ne!(
                part(&again, 1)["jti"],
                claims["jti"],
                "a fresh jti each time"
            );
        }
    }

    #[tokio::test]
    async fn the_assertion_file_is_read_on_every_request() {
        let dir = std::env::temp_dir().join(format!("keyward-assertion-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        let credential = Credential::AssertionFile(path.clone());
        let http = crate::fetch::client();
        let presented = |c: Credential| {
            let http = http.clone();
            async move { present(&c, &http, "c", URL, Duration::from_secs(1), 0).await }
        };
        // Missing: retried later, not a refusal.
        assert!(matches!(
            presented(credential.clone()).await,
            Err(Unpresentable::Retry(_))
        ));
        std::fs::write(&path, "a.b.c\n").unwrap();
        let Ok(Presented::Assertion(first)) = presented(credential.clone()).await else {
            panic!()
        };
        assert_eq!(first, "a.b.c");
        // The kubelet swaps the file; the next request sends the new token.
        std::fs::write(&path, "d.e.f").unwrap();
        let Ok(Presented::Assertion(second)) = presented(credential.clone()).await else {
            panic!()
        };
        assert_eq!(second, "d.e.f");
        std::fs::write(&path, "not a jwt").unwrap();
        let Err(Unpresentable::Refused { description, .. }) = presented(credential).await else {
            panic!()
        };
        assert!(description.contains("not a JWT"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn github_actions_needs_both_variables_and_never_shows_the_token() {
        let env = |name: &str| match name {
            GITHUB_URL_VAR => Some("https://token.actions.example/x?api-version=2.0".to_owned()),
            GITHUB_TOKEN_VAR => Some("request-token".to_owned()),
            _ => None,
        };
        let c = Credential::github_actions_with_env("api://keyward", &env).unwrap();
        assert!(c.check().is_ok());
        assert!(!format!("{c:?}").contains("request-token"));
        let e =
            Credential::github_actions_with_env("a", &|n| env(n).filter(|_| n == GITHUB_URL_VAR))
                .unwrap_err();
        assert!(
            e.contains(GITHUB_TOKEN_VAR) && e.contains("id-token: write"),
            "{e}"
        );
    }
}
