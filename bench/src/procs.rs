//! The processes a run starts (baselines, Keyward, orders-api, the gateway, the agent), their ports and temporary files, and
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
        self.baseline_with(which, None).await
    }

    /// The proxy baseline (`serve-proxy`) in front of `upstream`: (pid, base URL).
    pub(crate) async fn baseline_proxy(&mut self, upstream: &str) -> anyhow::Result<(u32, String)> {
        self.baseline_with("proxy", Some(upstream)).await
    }

    async fn baseline_with(
        &mut self,
        which: &str,
        upstream: Option<&str>,
    ) -> anyhow::Result<(u32, String)> {
        let port = free_port()?;
        let mut c = Command::new(std::env::current_exe()?);
        c.args([format!("serve-{which}"), format!("127.0.0.1:{port}")]);
        c.args(upstream);
        let pid = self.spawn(c, &format!("baseline-{which}.log"))?;
        wait_listening(port).await?;
        Ok((pid, format!("http://127.0.0.1:{port}")))
    }

    /// A fresh PostgreSQL database, dropped at the end.
    pub(crate) fn postgres_database(&mut self) -> anyhow::Result<String> {
        let name = format!(
            "kw_bench_{}_{}",
            std::process::id(),
            self.pg_databases.len()
        );
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

    /// node-oidc-provider from `dir` (see `peers.rs`): (pid, base URL).
    pub(crate) async fn peer(&mut self, dir: &Path) -> anyhow::Result<(u32, String)> {
        let port = free_port()?;
        let pid = self.spawn(crate::peers::command(dir, port), "oidc-provider.log")?;
        wait_listening(port).await?;
        Ok((pid, format!("http://127.0.0.1:{port}")))
    }

    /// The run's temporary directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// `keyward gateway` in front of `upstream`, verifying tokens for `https://bench.api` from `issuer`; with
    /// `own_origin`, its `public_origin` is its own address, the `htu` of DPoP proofs sent to it.
    pub(crate) async fn gateway(
        &mut self,
        bin: &Path,
        upstream: &str,
        issuer: &str,
        log_level: &str,
        own_origin: bool,
    ) -> anyhow::Result<(u32, String)> {
        let port = free_port()?;
        let config = self.dir.join("gateway.toml");
        let origin = if own_origin {
            format!("public_origin = \"http://127.0.0.1:{port}\"\n")
        } else {
            String::new()
        };
        std::fs::write(
            &config,
            format!(
                "upstream = \"{upstream}\"\nissuer = \"{issuer}\"\naudience = \"https://bench.api\"\n{origin}\
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

    /// `keyward agent` holding `api` as the API named `bench`; returns once its token endpoint answers 200 (its
    /// first token fetched): (pid, base URL).
    pub(crate) async fn agent(
        &mut self,
        bin: &Path,
        api: &AgentApi<'_>,
        log_level: &str,
    ) -> anyhow::Result<(u32, String)> {
        let port = free_port()?;
        let config = self.dir.join("agent.toml");
        std::fs::write(&config, agent_config(port, api, log_level))?;
        let mut c = Command::new(bin.join("keyward"));
        c.args(["agent", "--config"])
            .arg(&config)
            .env(AGENT_SECRET_ENV, api.client_secret);
        let pid = self.spawn(c, "agent.log")?;
        wait_listening(port).await?;
        let base = format!("http://127.0.0.1:{port}");
        let ready = agent_token_shot(&base);
        let start = Instant::now();
        while !crate::load::once(&ready).await {
            if start.elapsed() > Duration::from_secs(30) {
                bail!(
                    "keyward agent gave no token after 30 s; its log:\n{}",
                    self.log("agent.log")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok((pid, base))
    }

    /// What a process started by `spawn` wrote on stderr so far (its last 4,000 bytes).
    pub(crate) fn log(&self, name: &str) -> String {
        let all = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let mut from = all.len().saturating_sub(4_000);
        while !all.is_char_boundary(from) {
            from += 1;
        }
        all[from..].to_owned()
    }
}

/// The API `keyward agent` holds in a run, named `bench`: a client of a Keyward and the API it calls.
pub(crate) struct AgentApi<'a> {
    /// The Keyward's token endpoint.
    pub(crate) token_url: String,
    /// The resource the client asks for (RFC 8707).
    pub(crate) resource: &'a str,
    pub(crate) client_id: &'a str,
    /// Given to the agent in `AGENT_SECRET_ENV`, not in the file.
    pub(crate) client_secret: &'a str,
    /// Where proxy mode forwards to.
    pub(crate) api_url: &'a str,
}

/// The environment variable the agent reads the client's secret from.
const AGENT_SECRET_ENV: &str = "KEYWARD_BENCH_AGENT_SECRET";

/// The agent's configuration file (docs/AGENT.md): one API, `bench`.
fn agent_config(port: u16, api: &AgentApi<'_>, log_level: &str) -> String {
    format!(
        "listen = \"127.0.0.1:{port}\"\nlog_level = \"{log_level}\"\n\n[api.bench]\n\
         token_url = \"{}\"\nresource = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"{AGENT_SECRET_ENV}\"\n\
         api_url = \"{}\"\n",
        api.token_url, api.resource, api.client_id, api.api_url
    )
}

/// Token mode: the agent's token for the API `bench`, from memory.
pub(crate) fn agent_token_shot(base: &str) -> crate::load::Shot {
    crate::load::Shot::get(format!("{base}/v1/token/bench")).header("metadata-flavor", "Keyward")
}

type Http = Client<HttpConnector, Full<Bytes>>;

/// A running Keyward with an admin token.
pub(crate) struct Keyward {
    pub(crate) pid: u32,
    pub(crate) base: String,
    /// Its data directory (SQLite file, master key).
    pub(crate) data: PathBuf,
    /// `--database`, when not the SQLite default.
    pub(crate) database: Option<String>,
    http: Http,
    /// `Authorization` for the admin API.
    pub(crate) admin: String,
    admin_creds: (String, String),
}

/// How Keyward is started: its data, its database, its threads, and the admin client when not a first start.
pub(crate) struct Launch {
    pub(crate) data: PathBuf,
    /// Extra `KEYWARD_*` settings.
    pub(crate) env: Vec<(&'static str, String)>,
    pub(crate) database: Option<String>,
    pub(crate) threads: Option<usize>,
    pub(crate) admin: Option<(String, String)>,
}

impl Launch {
    /// A first start in a new directory under the run's temporary directory.
    pub(crate) fn fresh(procs: &Procs, database: Option<String>, threads: Option<usize>) -> Self {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Launch {
            data: procs.dir.join(format!("keyward-{n}")),
            env: Vec::new(),
            database,
            threads,
            admin: None,
        }
    }
}

impl Keyward {
    /// Starts `keyward serve` (log level warn) on SQLite in a temporary directory, or on `database`.
    pub(crate) async fn start(
        procs: &mut Procs,
        bin: &Path,
        database: Option<String>,
        threads: Option<usize>,
    ) -> anyhow::Result<Self> {
        let launch = Launch::fresh(procs, database, threads);
        Self::launch(procs, bin, launch).await
    }

    /// Starts `keyward serve` as `launch` says; returns once it answers a token request.
    pub(crate) async fn launch(
        procs: &mut Procs,
        bin: &Path,
        launch: Launch,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut c = Command::new(bin.join("keyward"));
        c.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("KEYWARD_DATA_DIR", &launch.data)
            .env("KEYWARD_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(db) = &launch.database {
            c.args(["--database", db]);
        }
        if let Some(n) = launch.threads {
            c.env("KEYWARD_WORKER_THREADS", n.to_string());
        }
        c.envs(launch.env.iter().map(|(k, v)| (*k, v)));
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
        let (id, secret) = match launch.admin {
            Some(creds) => creds,
            None => tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
                .await?
                .map_err(|_| anyhow!("keyward printed no admin credentials"))?,
        };
        wait_listening(port).await?;
        let http: Http = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let mut kw = Keyward {
            pid,
            base: format!("http://127.0.0.1:{port}"),
            data: launch.data,
            database: launch.database,
            http,
            admin: String::new(),
            admin_creds: (id.clone(), secret.clone()),
        };
        kw.admin = format!("Bearer {}", kw.token(&id, &secret).await?);
        Ok(kw)
    }

    /// What `launch` needs to start this deployment again (after `Procs::stop`).
    pub(crate) fn relaunch(&self, threads: Option<usize>) -> Launch {
        Launch {
            data: self.data.clone(),
            env: Vec::new(),
            database: self.database.clone(),
            threads,
            admin: Some(self.admin_creds.clone()),
        }
    }

    /// `keyward clients import FILE` against this deployment's database; how long it took.
    pub(crate) fn import(&self, bin: &Path, file: &Path) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut c = Command::new(bin.join("keyward"));
        c.args(["clients", "import"])
            .arg(file)
            .env("KEYWARD_DATA_DIR", &self.data)
            .stdout(Stdio::null());
        if let Some(db) = &self.database {
            c.args(["--database", db]);
        }
        let out = c.output().context("running keyward clients import")?;
        if !out.status.success() {
            bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(started.elapsed())
    }

    /// Whether every client is in memory (`/readyz`).
    pub(crate) async fn clients_in_memory(&self) -> anyhow::Result<bool> {
        let (_, b) = self.call("GET", "/readyz", "", "", String::new()).await?;
        Ok(b["clients"] == "in memory")
    }

    /// Waits until Keyward has written the client's secret as used (the flush runs every second), so that the
    /// measured run that follows would show any write it causes.
    pub(crate) async fn wait_last_used(&self, id: &str) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let path = format!("/admin/v1/clients/{id}/secrets");
            let (_, b) = self
                .call("GET", &path, &self.admin, "", String::new())
                .await?;
            if b["items"][0]["last_used_at"].is_i64() {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("last_used_at of {id} not written after 10 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates the resource for `alg` (the ES256 one is `https://bench.api`); returns its identifier.
    pub(crate) async fn resource_for(&self, alg: &str) -> anyhow::Result<String> {
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
        Ok(identifier)
    }

    /// A counter of the database's committed writes, read by a connection of the bench's own.
    pub(crate) async fn write_counter(&self) -> anyhow::Result<WriteCounter> {
        use sqlx::Connection;
        Ok(match &self.database {
            None => {
                let url = format!(
                    "sqlite://{}?mode=ro",
                    self.data.join("keyward.db").display()
                );
                WriteCounter::Sqlite(sqlx::SqliteConnection::connect(&url).await?)
            }
            Some(url) => WriteCounter::Postgres(sqlx::PgConnection::connect(url).await?),
        })
    }

    /// One request to this Keyward: its status and JSON body (`Null` when not JSON).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        auth: &str,
        ctype: &str,
        body: String,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in [("authorization", auth), ("content-type", ctype)] {
            if !value.is_empty() {
                req = req.header(name, value);
            }
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
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
        let identifier = self.resource_for(alg).await?;
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

/// The engine's own count of committed writes. SQLite: `PRAGMA data_version`, which changes when another
/// connection commits. PostgreSQL: the next transaction id, which only a transaction that writes consumes (it
/// counts the whole cluster: nothing else should write during a run).
pub(crate) enum WriteCounter {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteCounter {
    /// The counter now.
    pub(crate) async fn read(&mut self) -> anyhow::Result<i64> {
        Ok(match self {
            WriteCounter::Sqlite(c) => {
                let (v,): (i64,) = sqlx::query_as("PRAGMA data_version").fetch_one(c).await?;
                v
            }
            WriteCounter::Postgres(c) => {
                let (v,): (i64,) =
                    sqlx::query_as("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
                        .fetch_one(c)
                        .await?;
                v
            }
        })
    }
}
