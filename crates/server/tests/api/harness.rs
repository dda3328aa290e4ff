//! `TestApp`: one Keyward server per test, with its own database, a fixed clock the test can move, and helpers
//! that speak HTTP to it.

use std::collections::HashMap;

use keyward::app::App;
use keyward::clock::Clock;
use keyward::config;
use keyward::first_start::FirstStart;
use keyward::serve::serve;
use keyward_core::basic;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

/// PostgreSQL every machine runs (trust auth).
pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs a test body once on SQLite and once on PostgreSQL; `example NAME` starts the server on
/// `examples/NAME.toml`.
#[macro_export]
macro_rules! both_engines {
    ($name:ident, example $file:literal, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $app =
                    $crate::harness::TestApp::example($file, $crate::harness::Engine::Sqlite).await;
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $app =
                    $crate::harness::TestApp::example($file, $crate::harness::Engine::Postgres)
                        .await;
                $body
            }
        }
    };
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $app = $crate::harness::TestApp::sqlite().await;
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $app = $crate::harness::TestApp::postgres().await;
                $body
            }
        }
    };
}

/// Which database a test server runs on.
#[derive(Debug, Clone, Copy)]
pub enum Engine {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// What `TestApp::launch` starts: the database, and what a cluster's nodes share.
pub struct Launch {
    /// Data directory (master key, SQLite file).
    pub dir: tempfile::TempDir,
    /// The database URL.
    pub database: String,
    /// A PostgreSQL database to drop when the server is dropped.
    pub pg_database: Option<String>,
    /// A configuration file.
    pub config_file: Option<std::path::PathBuf>,
    /// The issuer (default: the server's own address).
    pub issuer: Option<String>,
    /// The clock (default: a fixed clock at the current time).
    pub clock: Option<Clock>,
    /// The admin credentials, when first start ran elsewhere.
    pub admin: Option<FirstStart>,
    /// Extra `KEYWARD_*` settings.
    pub env: HashMap<String, String>,
}

impl Default for Launch {
    fn default() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            database: String::new(),
            pg_database: None,
            config_file: None,
            issuer: None,
            clock: None,
            admin: None,
            env: HashMap::new(),
        }
    }
}

/// A running server.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// The server's clock.
    pub clock: Clock,
    /// The server's state.
    pub app: App,
    /// First-start admin credentials.
    pub admin: FirstStart,
    /// Data directory (master key, SQLite file).
    pub dir: tempfile::TempDir,
    /// The database URL.
    pub database: String,
    pg_database: Option<String>,
    server: tokio::task::JoinHandle<()>,
}

impl TestApp {
    /// A server on a temporary SQLite file.
    pub async fn sqlite() -> Self {
        Self::on(Engine::Sqlite, None).await
    }

    /// A server on a fresh PostgreSQL database. Fails (never skips) when PostgreSQL is unreachable.
    pub async fn postgres() -> Self {
        Self::on(Engine::Postgres, None).await
    }

    /// A server on `examples/NAME.toml`, with only the database and data directory replaced; the issuer stays
    /// the example's.
    pub async fn example(name: &str, engine: Engine) -> Self {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(format!("{name}.toml"));
        Self::on(engine, Some(path)).await
    }

    /// A server on `engine` with extra `KEYWARD_*` settings.
    pub async fn with_env(engine: Engine, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (database, pg_database) = database_on(engine, &dir).await;
        Self::launch(Launch {
            dir,
            database,
            pg_database,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Launch::default()
        })
        .await
    }

    async fn on(engine: Engine, config: Option<std::path::PathBuf>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (database, pg_database) = database_on(engine, &dir).await;
        Self::launch(Launch {
            dir,
            database,
            pg_database,
            config_file: config,
            ..Launch::default()
        })
        .await
    }

    /// Starts a server as `launch` describes.
    pub async fn launch(launch: Launch) -> Self {
        let Launch {
            dir,
            database,
            pg_database,
            config_file,
            issuer,
            clock,
            admin,
            env: extra,
        } = launch;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut env: HashMap<String, String> = [
            ("KEYWARD_DATABASE", database.as_str()),
            ("KEYWARD_DATA_DIR", &dir.path().to_string_lossy()),
            ("KEYWARD_DB_MAX_CONNECTIONS", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if config_file.is_none() {
            env.insert(
                "KEYWARD_ISSUER".into(),
                issuer.unwrap_or_else(|| base.clone()),
            );
        }
        env.extend(extra);
        let config =
            config::load(config_file.as_deref(), &env, &config::Flags::default()).expect("config");
        let clock = clock.unwrap_or_else(|| Clock::fixed(Clock::wall()));
        let (app, first) = App::open(&config, clock.clone()).await.expect("open");
        let server = tokio::spawn({
            let app = app.clone();
            async move {
                let _ = serve(app, listener, std::future::pending()).await;
            }
        });
        TestApp {
            base,
            http: reqwest::Client::new(),
            clock,
            app,
            admin: admin
                .or(first)
                .expect("first start creates the admin client"),
            dir,
            database,
            pg_database,
            server,
        }
    }

    /// Another node of the same cluster: the same database, master key, issuer and clock, its own port and
    /// memory. It serves until dropped; dropping it leaves the database alone.
    pub async fn node(&self) -> TestApp {
        self.node_with(&[]).await
    }

    /// Waits until every client is in memory (the feed follower has loaded them and caught up), so what a test
    /// sees next comes from memory and the feed, not from reading the store.
    pub async fn wait_loaded(&self) {
        let started = std::time::Instant::now();
        while !self.app.memory.registry.is_loaded() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "clients not loaded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// `node` with extra `KEYWARD_*` settings.
    pub async fn node_with(&self, env: &[(&str, &str)]) -> TestApp {
        self.node_on(self.clock.clone(), env).await
    }

    /// `node_with` on a clock of its own (a machine whose clock differs).
    pub async fn node_on(&self, clock: Clock, env: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(
            self.dir.path().join("keyward.secret"),
            dir.path().join("keyward.secret"),
        )
        .expect("copy the master key");
        Self::launch(Launch {
            dir,
            database: self.database.clone(),
            issuer: Some(self.app.settings.issuer.clone()),
            clock: Some(clock),
            admin: Some(FirstStart {
                client_id: self.admin.client_id.clone(),
                client_secret: self.admin.client_secret.clone(),
            }),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Launch::default()
        })
        .await
    }

    /// A second `App` on the same database and master key that serves nothing and runs no background task (as
    /// the CLI does): its registry never loads the clients.
    pub async fn unserved_twin(&self) -> App {
        let env: HashMap<String, String> = [
            ("KEYWARD_DATABASE", self.database.as_str()),
            ("KEYWARD_DATA_DIR", &self.dir.path().to_string_lossy()),
            ("KEYWARD_ISSUER", &self.base),
            ("KEYWARD_DB_MAX_CONNECTIONS", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = config::load(None, &env, &config::Flags::default()).expect("config");
        App::open(&config, self.clock.clone())
            .await
            .expect("open")
            .0
    }

    /// The instance of a client (`ClientRow::instance`), as its store row has it.
    pub async fn instance(&self, client_id: &str) -> i64 {
        self.app
            .store
            .client_get(client_id)
            .await
            .expect("client")
            .0
            .instance
    }

    /// Verifies a token with an independent JWT library against this server's JWKS, requiring `aud` and this
    /// server's issuer; returns the claims.
    pub async fn verify_jwt(&self, token: &str, aud: &str) -> Value {
        let jwks: jsonwebtoken::jwk::JwkSet = self.get_json(&self.url("/oauth2/jwks")).await;
        let header = jsonwebtoken::decode_header(token).expect("JWT header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let jwk = jwks
            .find(header.kid.as_deref().expect("kid"))
            .expect("kid in JWKS");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("JWK");
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.set_audience(&[aud]);
        v.set_issuer(&[self.app.settings.issuer.as_str()]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Value>(token, &key, &v)
            .expect("token verifies against the JWKS")
            .claims
    }

    /// A full URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Calls a URL (of any server) with a bearer token.
    pub async fn bearer(&self, method: reqwest::Method, url: &str, token: &str) -> Response {
        self.http
            .request(method, url)
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Rotates the `alg` signing key and moves the clock past the publish delay, so the new key signs.
    pub async fn rotate_and_activate(&self, alg: &str) {
        let (status, body) = self
            .admin_call(
                reqwest::Method::POST,
                "/keys/rotate",
                Some(json!({ "alg": alg })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        self.clock.advance(self.app.admin.key_publish_delay);
    }

    /// Revokes a token as the client it was issued to (RFC 7009), which must succeed.
    pub async fn revoke(&self, id: &str, secret: &str, token: &str) {
        let r = self
            .post_form("/oauth2/revoke", Some((id, secret)), &[("token", token)])
            .await;
        assert_eq!(r.status(), StatusCode::OK, "revocation failed");
    }

    /// GETs a URL and decodes its JSON body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> T {
        self.http
            .get(url)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON body")
    }

    /// POSTs a body as given, with a content type and optional Basic credentials (RFC 6749 §2.3.1 encoded).
    pub async fn post_raw(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        content_type: &str,
        body: &str,
    ) -> Response {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Some((id, secret)) = basic {
            req = req.header("authorization", basic::encode(id, secret));
        }
        req.send().await.expect("request")
    }

    /// POSTs a form body with optional Basic credentials.
    pub async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> Response {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", basic::form_encode(k), basic::form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.post_raw(path, basic, "application/x-www-form-urlencoded", &body)
            .await
    }

    /// A client_credentials request with Basic auth.
    pub async fn token(&self, id: &str, secret: &str, extra: &[(&str, &str)]) -> Response {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        self.post_form("/oauth2/token", Some((id, secret)), &form)
            .await
    }

    /// A token that must succeed; returns the access token.
    pub async fn access_token(&self, id: &str, secret: &str, extra: &[(&str, &str)]) -> String {
        let r = self.token(id, secret, extra).await;
        let status = r.status();
        let body: Value = r.json().await.expect("json");
        assert_eq!(status, StatusCode::OK, "token request failed: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// An admin API token for the first-start admin client.
    pub async fn admin_token(&self) -> String {
        self.access_token(&self.admin.client_id, &self.admin.client_secret, &[])
            .await
    }

    /// Calls the admin API with the admin token.
    pub async fn admin_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let token = self.admin_token().await;
        let mut req = self
            .http
            .request(method, self.url(&format!("/admin/v1{path}")))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let text = r.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a resource through the admin API.
    pub async fn resource(&self, identifier: &str, scopes: &[&str]) -> Value {
        let (status, body) = self
            .admin_call(
                reqwest::Method::POST,
                "/resources",
                Some(json!({"identifier": identifier, "name": identifier, "scopes": scopes})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Creates a client through the admin API; returns (client_id, client_secret).
    pub async fn client(&self, spec: Value) -> (String, String) {
        let (status, body) = self
            .admin_call(reqwest::Method::POST, "/clients", Some(spec))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["client_id"].as_str().expect("id").to_owned(),
            body["client_secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// A resource `api` with scopes `read write` and a client allowed both: the common fixture.
    pub async fn api_client(&self) -> (String, String) {
        self.resource("https://api.example.com", &["read", "write"])
            .await;
        self.client(json!({"name": "shop", "resources": ["https://api.example.com"], "scopes": ["read", "write"]})).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(name) = self.pg_database.take() {
            drop_pg_database(name);
        }
    }
}

/// A database for a new server on `engine`: a SQLite file in `dir`, or a fresh PostgreSQL database (with its name,
/// to drop).
async fn database_on(engine: Engine, dir: &tempfile::TempDir) -> (String, Option<String>) {
    match engine {
        Engine::Sqlite => (
            dir.path().join("keyward.db").to_string_lossy().into_owned(),
            None,
        ),
        Engine::Postgres => {
            let (name, url) = fresh_pg_database().await;
            (url, Some(name))
        }
    }
}

/// Creates a fresh PostgreSQL database on the shared server; returns its name and URL. Fails (never skips) when
/// PostgreSQL is unreachable.
pub async fn fresh_pg_database() -> (String, String) {
    let name = format!("kw_t_{}", hex(&keyward::crypto::random::<8>()));
    let admin = sqlx::PgPool::connect(PG_URL)
        .await
        .expect("PostgreSQL must run at 127.0.0.1:5432 for the tests");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("create test database");
    admin.close().await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    (name, url)
}

/// Polls `check` every 10 ms until it holds; returns how long that took, failing with `what` past `limit`.
pub async fn eventually<F, Fut>(
    limit: std::time::Duration,
    what: &str,
    mut check: F,
) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() <= limit, "{what}: not within {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Drops a test database (`WITH (FORCE)`), from a runtime of its own: this runs in `Drop`, possibly while the
/// test's runtime unwinds.
pub fn drop_pg_database(name: String) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            if let Ok(pool) = sqlx::PgPool::connect(PG_URL).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&pool)
                    .await;
            }
        });
    })
    .join();
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a JWT's payload without verifying it (for assertions on tokens already verified elsewhere).
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("json")
}

/// Asserts an OAuth error response: status, `error`, and the no-store headers.
pub async fn assert_error(r: Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(r.status(), status, "status");
    assert_eq!(
        r.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap_or("")),
        Some("no-store")
    );
    assert_eq!(
        r.headers().get("pragma").map(|v| v.to_str().unwrap_or("")),
        Some("no-cache")
    );
    let body: Value = r.json().await.expect("JSON error body");
    assert_eq!(body["error"], error, "{body}");
    body
}
