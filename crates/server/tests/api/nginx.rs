//! docs/deploy/nginx.conf as documented, in front of two `keyward serve` nodes on one PostgreSQL database: clients,
//! tokens and introspection through nginx reach both nodes, and keep working when one node is killed with
//! `kill -9` (proxy_next_upstream). Fails, never skips, where nginx is missing: `bash scripts/test` installs it.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::child::{FreshPg, Process, Served, token_request};
use crate::harness::claims;

/// Keyward's log line for each request it answered (`http/observe.rs`).
const ANSWERED: &str = "request method=";

/// The resource the test's client is allowed.
const API: &str = "https://api.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_conf_spreads_over_two_nodes_and_skips_a_dead_one() {
    let nginx = nginx_on_path();
    let pg = FreshPg::create().await;
    // nginx has no port 0 that it reports back: take a free port and release it for nginx. The nodes must know
    // it first, as the issuer every node shares is the URL clients reach nginx at.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = format!("http://127.0.0.1:{port}");
    let node = |dir: &Path| {
        Served::serve(
            ["--database", pg.url.as_str()],
            [
                ("KEYWARD_DATA_DIR", dir.as_os_str()),
                ("KEYWARD_ISSUER", OsStr::new(&issuer)),
                ("KEYWARD_DB_MAX_CONNECTIONS", OsStr::new("5")),
            ],
        )
    };
    // Node A does the first start; node B starts after it, with A's master key copied as an operator does.
    let dir_a = tempfile::tempdir().unwrap();
    let a = node(dir_a.path());
    let (admin_id, admin_secret) = a.admin();
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir_a.path().join("keyward.secret"),
        dir_b.path().join("keyward.secret"),
    )
    .unwrap();
    let mut a = a.keep(dir_a);
    let b = node(dir_b.path()).keep(dir_b);
    assert_eq!(b.first_start(), None, "the second node redid first start");

    // The documented file, with only its example addresses replaced.
    let prefix = tempfile::tempdir().unwrap();
    // nginx started as root runs its workers as `nobody`, who must be able to enter the prefix (temp files).
    std::fs::set_permissions(prefix.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let documented = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/deploy/nginx.conf"),
    )
    .unwrap();
    let conf = replace_once(
        &documented,
        "listen 127.0.0.1:8080;",
        &format!("listen 127.0.0.1:{port};"),
    );
    let conf = replace_once(
        &conf,
        "server 127.0.0.1:8081 ",
        &format!("server {} ", a.addr()),
    );
    let conf = replace_once(
        &conf,
        "server 127.0.0.1:8082 ",
        &format!("server {} ", b.addr()),
    );
    let conf_path = prefix.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let nginx_command = || {
        let mut command = Command::new(&nginx);
        command
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-e", "stderr"]);
        command
    };
    let mut run = nginx_command();
    run.args(["-g", "daemon off;"]);
    // `nginx -s stop` (SIGTERM to the master, which stops its workers) rather than SIGKILL, which would leave
    // the workers running.
    let mut stop = nginx_command();
    stop.args(["-s", "stop"]);
    let mut proxy = Process::spawn("nginx", run).stop_on_drop(stop);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_until_up(&http, &mut proxy, &format!("{issuer}/healthz")).await;

    // Through nginx: the admin token, a resource and a client.
    let admin = token(&http, &issuer, &admin_id, &admin_secret).await;
    let (status, body) = call(
        http.post(format!("{issuer}/admin/v1/resources"))
            .bearer_auth(&admin)
            .json(&json!({"identifier": API, "name": "API", "scopes": ["read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let create = json!({"name": "behind nginx", "resources": [API], "scopes": ["read"]});
    let (status, body) = call(
        http.post(format!("{issuer}/admin/v1/clients"))
            .bearer_auth(&admin)
            .json(&create),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["client_id"].as_str().unwrap().to_owned();
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    // The node that did not create the client learns of it through the change feed; wait until both know it,
    // so a 401 below means a routing fault, not the feed's delay.
    for node in [&a, &b] {
        let start = Instant::now();
        while try_token(&http, &node.base, &id, &secret).await != StatusCode::OK {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{} never learnt of the new client",
                node.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Tokens and introspection through nginx: both nodes answer some, and nothing else reaches them.
    let before = answered(&[&a, &b], 0).await;
    tokens_and_introspection(&http, &issuer, &id, &secret, 10).await;
    let after = answered(&[&a, &b], before[0] + before[1] + 20).await;
    let (served_a, served_b) = (after[0] - before[0], after[1] - before[1]);
    assert!(
        served_a > 0 && served_b > 0,
        "one node served everything: A {served_a}, B {served_b}"
    );
    assert_eq!(served_a + served_b, 20, "requests answered by the nodes");

    // kill -9 node A: every request through nginx still succeeds, answered by B.
    a.kill_9();
    let before_b = answered(&[&b], 0).await[0];
    tokens_and_introspection(&http, &issuer, &id, &secret, 10).await;
    let (status, body) = call(
        http.get(format!("{issuer}/admin/v1/clients"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        http.post(format!("{issuer}/admin/v1/clients"))
            .bearer_auth(&admin)
            .json(&create),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        answered(&[&b], before_b + 22).await[0] - before_b,
        22,
        "B did not answer every request after A died"
    );
    // And nginx did it by trying B after A refused (proxy_next_upstream), not only by luck of the rotation:
    // its access log lists both nodes for a retried request.
    let retried = format!("upstream={}, {}", a.addr(), b.addr());
    let access = prefix.path().join("access.log");
    let start = Instant::now();
    while !std::fs::read_to_string(&access)
        .unwrap_or_default()
        .contains(&retried)
    {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "no request was retried on B: {}",
            std::fs::read_to_string(&access).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.assert_running();
}

/// How many requests each node has logged as answered, once their total reaches `expected` (or after 100 ms when
/// `expected` is 0, or after 2 s): a node's line reaches the test's log reader a moment after the answer its
/// client got.
async fn answered(nodes: &[&Served], expected: usize) -> Vec<usize> {
    let start = Instant::now();
    loop {
        let counts: Vec<usize> = nodes.iter().map(|n| n.process.count(ANSWERED)).collect();
        let elapsed = start.elapsed();
        let settled = if expected == 0 {
            elapsed >= Duration::from_millis(100)
        } else {
            counts.iter().sum::<usize>() >= expected
        };
        if settled || elapsed >= Duration::from_secs(2) {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `nginx` on PATH; fails with what to do when there is none.
fn nginx_on_path() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("nginx"))
                .find(|f| f.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "nginx is not on PATH, and this test needs it: run the tests with `bash scripts/test`, which \
                 installs nginx when it is missing (or install nginx-light and put /usr/sbin on PATH)"
            )
        })
}

/// `text` with `from`, which must occur exactly once, replaced: the test fails when the documented file changes
/// the lines it replaces, rather than running something else.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "docs/deploy/nginx.conf must hold {from:?} exactly once"
    );
    text.replacen(from, to, 1)
}

/// Waits up to 10 s for nginx to answer `url` with 200 (proxied to a node).
async fn wait_until_up(http: &reqwest::Client, nginx: &mut Process, url: &str) {
    let start = Instant::now();
    loop {
        let status = http.get(url).send().await.map(|r| r.status());
        if matches!(status, Ok(StatusCode::OK)) {
            return;
        }
        nginx.assert_running();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nginx does not answer {url}: {:#?}",
            nginx.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` tokens for the client and an introspection of each, through `base`; each must succeed.
async fn tokens_and_introspection(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
    n: usize,
) {
    for _ in 0..n {
        let access = token(http, base, id, secret).await;
        // Whichever node signed it, the token names the shared issuer: nginx's URL.
        assert_eq!(claims(&access)["iss"], base);
        let (status, body) = call(
            http.post(format!("{base}/oauth2/introspect"))
                .basic_auth(id, Some(secret))
                .form(&[("token", access.as_str())]),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["active"], true, "{body}");
    }
}

/// Sends a request; its status and JSON body (null when the body is not JSON).
async fn call(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = req.send().await.expect("request");
    let status = r.status();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The status of a client_credentials request.
async fn try_token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> StatusCode {
    token_request(http, base, id, secret)
        .send()
        .await
        .expect("request")
        .status()
}

/// A client_credentials token, which must be granted.
async fn token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let (status, body) = call(token_request(http, base, id, secret)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}
