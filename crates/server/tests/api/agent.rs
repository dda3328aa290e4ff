//! `keyward agent` as an operator runs it: the real binary in front of real Keywards (the seed examples, and plain
//! ones with short-lived tokens), each a process on 127.0.0.1:0. The tests of the five examples and of the
//! token's life are in the submodules; here are the shared helpers, the file errors, and the socket, the source
//! networks and SIGHUP.

mod examples;
mod lifecycle;
mod proxy;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::child::{SERVING, Served, token_request};

/// The ready line of `keyward agent`; it carries `listen=ADDR`.
const AGENT_READY: &str = "keyward agent is serving";

/// `keyward serve --listen LISTEN --metrics-listen 127.0.0.1:0 ARGS` with its data (and SQLite database) in
/// `data`. `KEYWARD_*` variables of the test's environment are not passed on.
fn keyward(listen: &str, data: &Path, args: &[&OsStr]) -> Served {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYWARD_") {
            command.env_remove(name);
        }
    }
    command
        .args([
            "serve",
            "--listen",
            listen,
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .env("KEYWARD_DATA_DIR", data);
    Served::spawn(command, SERVING)
}

/// Starts `keyward` on a thread of the blocking pool (it waits for the serving line), so several start at once.
fn keyward_soon(data: PathBuf, config: Option<PathBuf>) -> tokio::task::JoinHandle<Served> {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&OsStr> = match &config {
            Some(c) => vec![OsStr::new("--config"), c.as_os_str()],
            None => Vec::new(),
        };
        keyward("127.0.0.1:0", &data, &args)
    })
}

/// `examples/NAME.toml`.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(format!("{name}.toml"))
}

/// `keyward agent --config DIR/agent.toml --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0`, with `env`.
pub(crate) fn agent(dir: &Path, config: &str, env: &[(&str, &str)]) -> Served {
    let path = dir.join("agent.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
    command
        .arg("agent")
        .arg("--config")
        .arg(&path)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .envs(env.iter().copied());
    Served::spawn(command, AGENT_READY)
}

/// The `ADDR` of a process's metrics listener, from its log.
fn metrics_addr(served: &mut Served, line: &str) -> String {
    served
        .wait_for(line)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("metrics_listen="))
        .expect("metrics_listen= in the log line")
        .to_owned()
}

/// The value of one series (`name{labels}`) in a Prometheus scrape; 0 when absent.
async fn metric(http: &reqwest::Client, addr: &str, series: &str) -> u64 {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// The `[api.NAME]` lines of an API on a plain Keyward's own token endpoint.
fn plain_api(name: &str, base: &str, audience: &str) -> String {
    format!("[api.{name}]\ntoken_url = \"{base}/oauth2/token\"\naudience = \"{audience}\"\n")
}

/// An app's HTTP client for the agent: a bound on every request, and `Metadata-Flavor: Keyward` on each (token
/// mode needs it, and proxy mode by default).
pub(crate) fn http() -> reqwest::Client {
    let mut flavor = reqwest::header::HeaderMap::new();
    flavor.insert("metadata-flavor", "Keyward".parse().unwrap());
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .default_headers(flavor)
        .build()
        .unwrap()
}

/// A client that sends no `Metadata-Flavor`: what a redirect, a relay or a tricked app sends.
fn bare_http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Token mode: `GET /v1/token/NAME` with `Metadata-Flavor: Keyward`.
fn token_mode(http: &reqwest::Client, agent: &Served, name: &str) -> reqwest::RequestBuilder {
    http.get(agent.url(&format!("/v1/token/{name}")))
        .header("Metadata-Flavor", "Keyward")
}

/// Token mode's answer, which must be a token: (access_token, expires_in).
async fn token_of(http: &reqwest::Client, agent: &Served, name: &str) -> (String, u64) {
    token_at(http, &agent.url(&format!("/v1/token/{name}"))).await
}

/// Token mode's answer at `url` (for tasks that cannot borrow the agent), which must be a token.
async fn token_at(http: &reqwest::Client, url: &str) -> (String, u64) {
    let r = http
        .get(url)
        .header("Metadata-Flavor", "Keyward")
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{url}: {body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["expires_in"].as_u64().unwrap(),
    )
}

/// An answer that must be a JSON error with `status` whose description says `why`; returns its body.
async fn refused(r: reqwest::Response, status: StatusCode, why: &str) -> Value {
    assert_eq!(r.status(), status, "{why}");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error_description"].as_str().unwrap().contains(why),
        "{body}"
    );
    body
}

/// A JWT's claims, read without checking the signature (the APIs behind do that).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

/// The time now, in Unix seconds with a fraction.
#[allow(
    clippy::disallowed_methods,
    reason = "the tokens' `exp` is set by child processes on the system's clock, and checked against it"
)]
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The admin API of a Keyward child, with the first-start admin client's token.
struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    async fn of(served: &Served) -> Self {
        let http = http();
        let (id, secret) = served.admin();
        let r = token_request(&http, &served.base, &id, &secret)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let token = r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        Admin {
            http,
            base: served.base.clone(),
            token,
        }
    }

    /// A call to `/admin/v1{path}`: (status, JSON body or null).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A resource with a token lifetime of its own.
    async fn resource(&self, identifier: &str, ttl: &str) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/resources",
                Some(
                    json!({"identifier": identifier, "name": identifier, "access_token_ttl": ttl}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// A client of `resource`, with more of the admin API's fields in `extra`: (id, secret).
    async fn client(&self, resource: &str, extra: Value) -> (String, String) {
        let mut spec = json!({"name": "agent", "resources": [resource]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        let (status, body) = self
            .call(reqwest::Method::POST, "/clients", Some(spec))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["client_id"].as_str().unwrap().to_owned(),
            body["client_secret"].as_str().unwrap().to_owned(),
        )
    }
}

/// `keyward agent --config PATH`, run to its end.
fn agent_on(path: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keyward"))
        .arg("agent")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap()
}

// A file the agent cannot use stops it at start with exit status 2, and stderr names the key and why.
#[test]
fn a_bad_file_names_the_key_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let walley = "[api.walley]\npreset = \"walley\"\nenvironment = \"uat\"\nbase_url = \"http://127.0.0.1:8080\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
    let cases = [
        (
            walley.replace("\"uat\"", "\"qa\""),
            "api.walley.environment: `qa` is not one of uat, prod",
        ),
        (
            format!("{walley}colour = \"blue\"\n"),
            "api.walley.colour: unknown field `colour`",
        ),
        (
            walley.replace(
                "client_secret = \"s\"",
                "client_secret_file = \"/nonexistent/secret\"",
            ),
            "api.walley.client_secret_file: cannot read /nonexistent/secret",
        ),
        (
            format!("listen = \"0.0.0.0:8931\"\n{walley}"),
            "listen: `0.0.0.0:8931` is not a loopback address",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = agent_on(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
        assert!(
            stderr.contains(&*path.to_string_lossy()),
            "names the file: {stderr}"
        );
        assert!(!stderr.contains("\"s\""), "{stderr}");
    }
    // A socket path where a file is: refused, and the file left as it was.
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    let path = dir.path().join("socket-on-a-file.toml");
    std::fs::write(&path, format!("socket = \"{}\"\n{walley}", file.display())).unwrap();
    let out = agent_on(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("not a socket"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .arg("agent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config FILE is required"));
}

// The Unix socket (mode 0600, no Host check, still Metadata-Flavor), allowed_sources refusing loopback when it
// names other networks, readiness without a token, and SIGHUP reloading rather than ending the agent.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_sources_readiness_and_sighup() {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    // Nothing listens on port 9 (discard): the token endpoint cannot be reached.
    let config = format!(
        "socket = \"{}\"\nallowed_sources = [\"10.0.0.0/8\"]\nreload_interval = \"1s\"\n\
         [api.nowhere]\ntoken_url = \"http://127.0.0.1:9/token\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
        socket.display()
    );
    let mut agent = agent(dir.path(), &config, &[]);
    let metrics = metrics_addr(&mut agent, "metrics_listen=");
    let http = http();

    // Over TCP from 127.0.0.1, outside allowed_sources: refused whatever the request.
    let r = token_mode(&http, &agent, "nowhere").send().await.unwrap();
    refused(r, StatusCode::FORBIDDEN, "allowed_sources").await;

    // The socket: 0600; any Host (no DNS there); Metadata-Flavor still needed.
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let over_socket = |request: String| {
        let socket = socket.clone();
        async move {
            let mut s = tokio::net::UnixStream::connect(&socket).await.unwrap();
            s.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).await.unwrap();
            answer
        }
    };
    let answer = over_socket(
        "GET /v1/token/nope HTTP/1.1\r\nHost: agent\r\nMetadata-Flavor: Keyward\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("configured: nowhere"), "{answer}");
    let answer = over_socket(
        "GET /v1/token/nowhere HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("Metadata-Flavor"), "{answer}");

    // Not ready: no token, and the last error says why.
    let r = http
        .get(format!("http://{metrics}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["apis"]["nowhere"]["token"], false, "{body}");

    // SIGHUP reloads (the file is unchanged: nothing new) and the agent goes on.
    let status = Command::new("kill")
        .args(["-HUP", &agent.process.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = std::time::Instant::now();
    while metric(
        &http,
        &metrics,
        "keyward_agent_reloads_total{result=\"ok\"}",
    )
    .await
        == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no reload after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.process.assert_running();

    // SIGTERM: the agent stops and removes its socket.
    let pid = agent.process.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = std::time::Instant::now();
    while socket.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the socket is still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
