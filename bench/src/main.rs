//! Keyward's benchmarks, run by `bash bench/run`. Each scenario is measured against a baseline in the same run,
//! in alternating rounds, and printed as a ratio, since the machine is shared and absolute figures drift.
//!
//! Scenario `gateway`: requests per second through `keyward gateway` (token verified locally, forwarded) to a
//! trivial upstream (examples/orders-api, plain), against the same upstream called directly with the same
//! requests. Real processes on 127.0.0.1: a Keyward server (for the token and JWKS), the upstream, the gateway, and
//! this load generator (keep-alive connections, each sending requests back to back). Every request carries the
//! same token, as integrators reuse a token until it expires; the gateway checks its signature once and then
//! recognises it (keyward-client's verified-token cache), so the figure is the proxy's cost, not ECDSA's.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

type Http = Client<HttpConnector, Full<Bytes>>;

/// Child processes, killed when the bench ends (however it ends).
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Options {
    bin_dir: PathBuf,
    seconds: u64,
    connections: usize,
    rounds: usize,
    gateway_log_level: String,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        bin_dir: PathBuf::from("target/release"),
        seconds: 5,
        connections: 32,
        rounds: 3,
        gateway_log_level: "info".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--bin-dir" => o.bin_dir = value()?.into(),
            "--seconds" => o.seconds = value()?.parse()?,
            "--connections" => o.connections = value()?.parse()?,
            "--rounds" => o.rounds = value()?.parse()?,
            "--gateway-log-level" => o.gateway_log_level = value()?,
            other => bail!("unknown option {other}"),
        }
    }
    Ok(o)
}

/// A port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_listening(port: u16) -> anyhow::Result<()> {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("nothing listens on port {port} after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn call(
    http: &Http,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> anyhow::Result<(u16, Value)> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = http
        .request(req.body(Full::new(Bytes::from(body.unwrap_or_default())))?)
        .await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn basic(id: &str, secret: &str) -> String {
    use keyward_core::basic;
    basic::encode(id, secret)
}

/// Starts Keyward and returns (base URL, an access token for `https://bench.api`).
async fn keyward(
    procs: &mut Procs,
    bin: &Path,
    dir: &Path,
    http: &Http,
) -> anyhow::Result<(String, String)> {
    let port = free_port()?;
    let mut child = Command::new(bin.join("keyward"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("KEYWARD_DATA_DIR", dir)
        .env("KEYWARD_LOG_LEVEL", "warn")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting keyward serve")?;
    let stderr = child.stderr.take().context("stderr")?;
    procs.0.push(child);
    // The first start prints the admin credentials once, on stderr.
    let (mut id, mut secret) = (None, None);
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        if let Some(v) = line.trim().strip_prefix("client_id:") {
            id = Some(v.trim().to_owned());
        }
        if let Some(v) = line.trim().strip_prefix("client_secret:") {
            secret = Some(v.trim().to_owned());
            break;
        }
    }
    let (id, secret) = id.zip(secret).context("no admin credentials printed")?;
    let base = format!("http://127.0.0.1:{port}");
    wait_listening(port).await?;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let token = |id: String, secret: String| {
        let url = format!("{base}/oauth2/token");
        async move {
            let auth = basic(&id, &secret);
            let mut h = form.to_vec();
            h.push(("authorization", &auth));
            let (status, body) = call(
                http,
                "POST",
                &url,
                &h,
                Some("grant_type=client_credentials".into()),
            )
            .await?;
            if status != 200 {
                bail!("token request: {status} {body}");
            }
            Ok::<String, anyhow::Error>(
                body["access_token"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let admin = format!("Bearer {}", token(id, secret).await?);
    let json_headers = [
        ("content-type", "application/json"),
        ("authorization", admin.as_str()),
    ];
    let (s, b) = call(
        http,
        "POST",
        &format!("{base}/admin/v1/resources"),
        &json_headers,
        Some(json!({"identifier": "https://bench.api", "name": "bench"}).to_string()),
    )
    .await?;
    if s != 201 {
        bail!("resource: {s} {b}");
    }
    let (s, b) = call(
        http,
        "POST",
        &format!("{base}/admin/v1/clients"),
        &json_headers,
        Some(json!({"name": "bench", "resources": ["https://bench.api"]}).to_string()),
    )
    .await?;
    if s != 201 {
        bail!("client: {s} {b}");
    }
    let client = (
        b["client_id"].as_str().unwrap_or_default().to_owned(),
        b["client_secret"].as_str().unwrap_or_default().to_owned(),
    );
    Ok((base.clone(), token(client.0, client.1).await?))
}

/// Sends requests back to back on `connections` keep-alive connections for `seconds`; returns requests/s.
async fn load(url: &str, token: &str, connections: usize, seconds: u64) -> anyhow::Result<f64> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let http: Http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build(connector);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (http, done, failed) = (http.clone(), done.clone(), failed.clone());
        let (url, auth) = (url.to_owned(), format!("Bearer {token}"));
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let req = Request::get(&url)
                    .header("authorization", &auth)
                    .body(Full::new(Bytes::new()));
                let ok = match req {
                    Ok(req) => match http.request(req).await {
                        Ok(resp) => {
                            let status = resp.status();
                            resp.into_body().collect().await.is_ok() && status == 200
                        }
                        Err(_) => false,
                    },
                    Err(_) => false,
                };
                if ok { &done } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let failures = failed.load(Ordering::Relaxed);
    if failures > 0 {
        bail!("{failures} requests to {url} failed");
    }
    Ok(done.load(Ordering::Relaxed) as f64 / elapsed)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn gateway_scenario(o: &Options) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("keyward-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut procs = Procs(Vec::new());
    let http: Http = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let (issuer, token) = keyward(&mut procs, &o.bin_dir, &dir.join("keyward"), &http).await?;

    let up_port = free_port()?;
    procs.0.push(
        Command::new(o.bin_dir.join("orders-api"))
            .env("ORDERS_API_LISTEN", format!("127.0.0.1:{up_port}"))
            .stdout(Stdio::null())
            .spawn()
            .context("starting orders-api")?,
    );
    wait_listening(up_port).await?;

    let gw_port = free_port()?;
    let config = dir.join("gateway.toml");
    let log_level = &o.gateway_log_level;
    std::fs::write(
        &config,
        format!(
            "upstream = \"http://127.0.0.1:{up_port}\"\nissuer = \"{issuer}\"\naudience = \"https://bench.api\"\n\
             log_level = \"{log_level}\"\n[[route]]\nmethods = [\"GET\"]\npath = \"/manage/orders/{{id}}\"\n"
        ),
    )?;
    let log = std::fs::File::create(dir.join("gateway.log"))?;
    procs.0.push(
        Command::new(o.bin_dir.join("keyward"))
            .args(["gateway", "--config"])
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{gw_port}")])
            .stderr(log)
            .stdout(Stdio::null())
            .spawn()
            .context("starting keyward gateway")?,
    );
    wait_listening(gw_port).await?;

    let direct = format!("http://127.0.0.1:{up_port}/manage/orders/42");
    let through = format!("http://127.0.0.1:{gw_port}/manage/orders/42");
    // Warm-up: the gateway fetches discovery and the JWKS on its first request.
    load(&through, &token, 2, 1).await?;
    load(&direct, &token, 2, 1).await?;

    println!(
        "gateway: {} rounds of {} s each, {} connections, alternating order, gateway log_level {}",
        o.rounds, o.seconds, o.connections, o.gateway_log_level
    );
    println!(
        "{:>6} {:>14} {:>14} {:>8}",
        "round", "upstream r/s", "gateway r/s", "ratio"
    );
    let mut ratios = Vec::new();
    for round in 0..o.rounds {
        let (base, gw) = if round % 2 == 0 {
            let b = load(&direct, &token, o.connections, o.seconds).await?;
            (b, load(&through, &token, o.connections, o.seconds).await?)
        } else {
            let g = load(&through, &token, o.connections, o.seconds).await?;
            (load(&direct, &token, o.connections, o.seconds).await?, g)
        };
        ratios.push(gw / base);
        println!(
            "{:>6} {:>14.0} {:>14.0} {:>8.3}",
            round + 1,
            base,
            gw,
            gw / base
        );
    }
    println!(
        "gateway/upstream, median of {} rounds: {:.3}",
        o.rounds,
        median(ratios)
    );
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    gateway_scenario(&o).await
}
