//! The processes a run starts (baselines, Keyward, orders-api, the gateway), their ports and temporary files, and
//! their peak memory. Everything is stopped and removed when `Procs` is dropped, however the run ends.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const PG: &str = "postgres://postgres@127.0.0.1:5432";

pub(crate) struct Procs {
    children: Vec<Child>,
    dir: PathBuf,
    pg_databases: Vec<String>,
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for db in &self.pg_databases {
            let _ = Command::new("psql")
                .args([&format!("{PG}/test"), "-qc"])
                .arg(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

/// The peak resident memory of a process (`VmHWM`), MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

impl Procs {
    pub(crate) fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("keyward-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Procs {
            children: Vec::new(),
            dir,
            pg_databases: Vec::new(),
        })
    }

    fn spawn(&mut self, mut command: Command, log: &str) -> anyhow::Result<u32> {
        let log = std::fs::File::create(self.dir.join(log))?;
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Stops one process now.
    pub(crate) fn stop(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut c = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A baseline server (this binary, `serve-hello` or `serve-sign`): (pid, base URL).
    pub(crate) async fn baseline(&mut self, which: &str) -> anyhow::Result<(u32, String)> {
        let port = free_port()?;
        let mut c = Command::new(std::env::current_exe()?);
        c.args([format!("serve-{which}"), format!("127.0.0.1:{port}")]);
        let pid = self.spawn(c, &format!("baseline-{which}.log"))?;
        wait_listening(port).await?;
        Ok((pid, format!("http://127.0.0.1:{port}")))
    }

    /// A fresh PostgreSQL database, dropped at the end.
    pub(crate) fn postgres_database(&mut self) -> anyhow::Result<String> {
        let name = format!("kw_bench_{}", std::process::id());
        let ok = Command::new("psql")
            .args([&format!("{PG}/test"), "-qc"])
            .arg(format!("CREATE DATABASE {name}"))
            .status()
            .context("psql")?
            .success();
        if !ok {
            bail!("cannot create database {name}");
        }
        self.pg_databases.push(name.clone());
        Ok(format!("{PG}/{name}"))
    }

    /// orders-api, plain: (pid, base URL).
    pub(crate) async fn orders_api(&mut self, bin: &Path) -> anyhow::Result<(u32, String)> {
        let port = free_port()?;
        let mut c = Command::new(bin.join("orders-api"));
        c.env("ORDERS_API_LISTEN", format!("127.0.0.1:{port}"));
        let pid = self.spawn(c, "orders-api.log")?;
        wait_listening(port).await?;
        Ok((pid, format!("http://127.0.0.1:{port}")))
    }

    /// `keyward gateway` in front of `upstream`, verifying tokens for `https://bench.api` from `issuer`.
    pub(crate) async fn gateway(
        &mut self,
        bin: &Path,
        upstream: &str,
        issuer: &str,
        log_level: &str,
    ) -> anyhow::Result<(u32, String)> {
        let port = free_port()?;
        let config = self.dir.join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "upstream = \"{upstream}\"\nissuer = \"{issuer}\"\naudience = \"https://bench.api\"\n\
                 log_level = \"{log_level}\"\n[[route]]\nmethods = [\"GET\"]\npath = \"/manage/orders/{{id}}\"\n"
            ),
        )?;
        let mut c = Command::new(bin.join("keyward"));
        c.args(["gateway", "--config"])
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        let pid = self.spawn(c, "gateway.log")?;
        wait_listening(port).await?;
        Ok((pid, format!("http://127.0.0.1:{port}")))
    }
}

type Http = Client<HttpConnector, Full<Bytes>>;

/// A running Keyward with an admin token.
pub(crate) struct Keyward {
    pub(crate) pid: u32,
    pub(crate) base: String,
    http: Http,
    admin: String,
}

impl Keyward {
    /// Starts `keyward serve` (log level warn) on SQLite in a temporary directory, or on `database`.
    pub(crate) async fn start(
        procs: &mut Procs,
        bin: &Path,
        database: Option<String>,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let data = procs.dir.join(format!("keyward-{port}"));
        let mut c = Command::new(bin.join("keyward"));
        c.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("KEYWARD_DATA_DIR", &data)
            .env("KEYWARD_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(db) = database {
            c.args(["--database", &db]);
        }
        let mut child = c.spawn().context("starting keyward serve")?;
        let pid = child.id();
        let stderr = child.stderr.take().context("stderr")?;
        procs.children.push(child);
        // The first start prints the admin credentials once on stderr; the rest is drained so it never blocks.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut id, mut sent) = (None, false);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let t = line.trim();
                if let Some(v) = t.strip_prefix("client_id:") {
                    id = Some(v.trim().to_owned());
                }
                if let (Some(v), Some(i), false) = (t.strip_prefix("client_secret:"), &id, sent) {
                    let _ = tx.send((i.clone(), v.trim().to_owned()));
                    sent = true;
                }
            }
        });
        let (id, secret) =
            tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
                .await?
                .map_err(|_| anyhow!("keyward printed no admin credentials"))?;
        wait_listening(port).await?;
        let http: Http = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let mut kw = Keyward {
            pid,
            base: format!("http://127.0.0.1:{port}"),
            http,
            admin: String::new(),
        };
        kw.admin = format!("Bearer {}", kw.token(&id, &secret).await?);
        Ok(kw)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        auth: &str,
        ctype: &str,
        body: String,
    ) -> anyhow::Result<(u16, Value)> {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", auth)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))?;
        let resp = self.http.request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// A client_credentials token.
    pub(crate) async fn token(&self, id: &str, secret: &str) -> anyhow::Result<String> {
        let (s, b) = self
            .call(
                "POST",
                "/oauth2/token",
                &keyward_core::basic::encode(id, secret),
                "application/x-www-form-urlencoded",
                "grant_type=client_credentials".into(),
            )
            .await?;
        if s != 200 {
            bail!("token request: {s} {b}");
        }
        Ok(b["access_token"].as_str().unwrap_or_default().to_owned())
    }

    /// A resource signed with `alg` (the ES256 one is `https://bench.api`) and a client allowed it.
    pub(crate) async fn client_for(&self, alg: &str) -> anyhow::Result<(String, String)> {
        let identifier = if alg == "ES256" {
            "https://bench.api".to_owned()
        } else {
            format!("https://bench.api/{alg}")
        };
        let (s, b) = self
            .call(
                "POST",
                "/admin/v1/resources",
                &self.admin,
                "application/json",
                json!({"identifier": identifier, "name": alg, "signing_alg": alg}).to_string(),
            )
            .await?;
        if s != 201 && s != 409 {
            bail!("resource: {s} {b}");
        }
        let (s, b) = self
            .call(
                "POST",
                "/admin/v1/clients",
                &self.admin,
                "application/json",
                json!({"name": format!("bench {alg}"), "resources": [identifier]}).to_string(),
            )
            .await?;
        if s != 201 {
            bail!("client: {s} {b}");
        }
        Ok((
            b["client_id"].as_str().unwrap_or_default().to_owned(),
            b["client_secret"].as_str().unwrap_or_default().to_owned(),
        ))
    }
}
