//! `keyward agent`: a small local process that holds client credentials for any number of named APIs, each with
//! its own token endpoint and dialect, so that apps in any language get tokens without holding secrets. Token mode
//! answers `GET /v1/token/NAME` like a cloud instance's metadata service; proxy mode forwards `/NAME/<path>` to
//! the API with the token added. One keyward-client `TokenSource` per API, started at once, keeps the token and
//! refreshes it. Credentials are read again on SIGHUP or when their files change. An edge like the gateway: no
//! database, none of the server's state.

pub mod api;
pub mod config;
mod credential;
mod guard;
mod metrics;
mod proxy;
mod reload;
mod token;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_client::TokenSource;
use serde_json::json;
use tokio::net::TcpListener;

use config::{AgentConfig, Env, Overrides};
use guard::Via;

/// How long a request waits for a token when none is held (at start, or while the token endpoint is down).
const TOKEN_WAIT: Duration = Duration::from_secs(5);

/// A running agent: its APIs and what every request is checked against.
pub struct Agent {
    apis: BTreeMap<String, Api>,
    /// `a, b`: the configured names, for the 404 of an unknown one.
    names: String,
    allowed_sources: Vec<keyward_core::net::Cidr>,
    upstream: proxy::Upstream,
    reloads: reload::Counts,
}

/// One named API.
struct Api {
    source: TokenSource,
    /// Proxy mode's upstream base URL; `None`: token mode only.
    api_url: Option<String>,
    /// Where proxied calls carry the token; `None`: `Authorization: Bearer`.
    token_header: Option<HeaderName>,
    /// Whether proxy mode needs `Metadata-Flavor: Keyward` too.
    proxy_requires_header: bool,
}

impl Agent {
    /// Builds each API's token source (not yet started) and the proxy's client.
    pub fn new(config: &AgentConfig) -> Result<Arc<Self>, String> {
        let settings = &config.settings;
        let mut apis = BTreeMap::new();
        for a in &config.apis {
            let mut builder = a.builder().max_wait(TOKEN_WAIT);
            if let Some(ca) = &settings.ca_file {
                builder = builder.ca_file(ca).map_err(|e| format!("ca_file: {e}"))?;
            }
            let source = builder
                .build()
                .map_err(|e| format!("api.{}: {e}", a.name))?;
            let token_header = a
                .settings
                .token_header
                .as_deref()
                .map(|h| HeaderName::from_bytes(h.as_bytes()))
                .transpose()
                .map_err(|e| format!("api.{}.token_header: {e}", a.name))?;
            apis.insert(
                a.name.clone(),
                Api {
                    source,
                    api_url: a.settings.api_url.clone(),
                    token_header,
                    proxy_requires_header: a.settings.proxy_requires_header,
                },
            );
        }
        let names = apis.keys().cloned().collect::<Vec<_>>().join(", ");
        Ok(Arc::new(Agent {
            apis,
            names,
            allowed_sources: settings.allowed_sources.clone(),
            upstream: proxy::Upstream::new(settings)?,
            reloads: reload::Counts::default(),
        }))
    }

    /// Starts every token source, so that tokens are there before the first app asks.
    pub fn start(&self) {
        for api in self.apis.values() {
            api.source.start();
        }
    }

    /// The 404 of a name no API has, saying which names there are.
    fn unknown(&self, name: &str) -> Response {
        error(
            StatusCode::NOT_FOUND,
            "unknown_api",
            &format!("no API named `{name}`; configured: {}", self.names),
        )
    }
}

/// A JSON error answer (`error`, `error_description`), never cached.
fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut r = (
        status,
        axum::Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The state of a listener's requests: the agent, and whether they come over TCP or the Unix socket.
#[derive(Clone)]
struct Edge {
    agent: Arc<Agent>,
    unix: bool,
}

/// Token mode and proxy mode, on one listener.
fn router(agent: Arc<Agent>, unix: bool) -> Router {
    crate::http::logged(Router::new().fallback(handle)).with_state(Edge { agent, unix })
}

async fn handle(State(edge): State<Edge>, req: Request<Body>) -> Response {
    let via = match (edge.unix, req.extensions().get::<ConnectInfo<SocketAddr>>()) {
        (false, Some(ConnectInfo(peer))) => Via::Tcp(*peer),
        (true, _) => Via::Unix,
        // A TCP request always carries its peer (conn::serve); without one nothing says where it came from.
        (false, None) => {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the request's source is unknown",
            );
        }
    };
    let agent = &edge.agent;
    if let Err(why) = guard::check(&agent.allowed_sources, via, req.uri(), req.headers()) {
        return error(StatusCode::FORBIDDEN, "forbidden", why);
    }
    let path = req.uri().path();
    if let Some(name) = path.strip_prefix("/v1/token/") {
        let name = name.to_owned();
        return token::answer(agent, &name, req.method(), req.headers(), req.uri().query()).await;
    }
    if path == "/v1" || path.starts_with("/v1/") {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "token mode is GET /v1/token/NAME",
        );
    }
    proxy::forward(agent, req).await
}

/// Runs the agent on `config` (read from `path`, which reloads read again) until `shutdown`.
pub async fn run(
    config: AgentConfig,
    path: PathBuf,
    overrides: Overrides,
    env: Arc<Env>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = config.settings.clone();
    let tcp = match settings.listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?,
        ),
        None => None,
    };
    let unix = match &settings.socket {
        Some(p) => Some(bind_socket(p)?),
        None => None,
    };
    let metrics = match settings.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (metrics_listen): {e}"))?,
        ),
        None => None,
    };
    let agent = Agent::new(&config).map_err(anyhow::Error::msg)?;
    // Installed before anything is served, so that a SIGHUP sent once the agent is up never ends it.
    let hangups = reload::hangups();
    agent.start();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let timeouts = crate::conn::Timeouts::default();
    let mut tasks = Vec::new();
    if let Some(l) = metrics {
        tracing::info!(metrics_listen = %l.local_addr()?, "serving the agent's metrics at /metrics and readiness at /readyz");
        let router = metrics::router(agent.clone());
        tasks.push(tokio::spawn(crate::conn::serve(
            l,
            router,
            timeouts,
            until_stopped(),
        )));
    }
    let bound = tcp.as_ref().map(TcpListener::local_addr).transpose()?;
    if let Some(l) = tcp {
        let router = router(agent.clone(), false);
        tasks.push(tokio::spawn(crate::conn::serve(
            l,
            router,
            timeouts,
            until_stopped(),
        )));
    }
    #[cfg(unix)]
    if let Some(l) = unix {
        let router = router(agent.clone(), true);
        tasks.push(tokio::spawn(crate::conn::serve(
            l,
            router,
            timeouts,
            until_stopped(),
        )));
    }
    tasks.push(tokio::spawn(reload::watch(
        agent.clone(),
        config,
        path,
        overrides,
        env,
        hangups,
        until_stopped(),
    )));
    let apis = agent.names.clone();
    match (bound, &settings.socket) {
        (Some(addr), Some(socket)) => {
            tracing::info!(listen = %addr, socket = %socket.display(), %apis, "keyward agent is serving")
        }
        (Some(addr), None) => tracing::info!(listen = %addr, %apis, "keyward agent is serving"),
        (None, socket) => {
            let socket = socket.as_deref().unwrap_or(Path::new("")).display();
            tracing::info!(%socket, %apis, "keyward agent is serving")
        }
    }
    shutdown.await;
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    if let Some(p) = &settings.socket {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// Binds the Unix socket at `path` with mode 0600. It is bound in a private directory, given its mode there and
/// only then moved into place, so no other user can connect in between; a stale socket left by a process that
/// died is replaced, a live one is not.
#[cfg(unix)]
fn bind_socket(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    let shown = path.display();
    // Only a socket nobody serves is replaced: not a file (a mistyped path), not a live agent, not one this user
    // may not even connect to.
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("socket {shown}: {e}"),
        Ok(m) if !m.file_type().is_socket() => {
            anyhow::bail!("socket {shown}: something that is not a socket is there")
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => anyhow::bail!("socket {shown}: another process is serving it"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => anyhow::bail!("socket {shown}: {e}"),
        },
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let private = parent.join(format!(".keyward-agent-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| anyhow::anyhow!("socket {shown}: cannot create {}: {e}", private.display()))?;
    let temporary = private.join("agent.sock");
    let placed = tokio::net::UnixListener::bind(&temporary).and_then(|listener| {
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&temporary, path)?;
        Ok(listener)
    });
    let _ = std::fs::remove_file(&temporary);
    let _ = std::fs::remove_dir(&private);
    placed.map_err(|e| anyhow::anyhow!("socket {shown}: {e}"))
}

#[cfg(not(unix))]
fn bind_socket(path: &Path) -> anyhow::Result<()> {
    anyhow::bail!("socket {}: Unix sockets need a Unix system", path.display())
}
