//! `keyward gateway`: a reverse proxy that protects an API written in any language. Each request is matched
//! against the route table, its token verified with keyward-client (locally, or by introspection where a route
//! asks; a DPoP-bound token with its proof, RFC 9449 §7), and forwarded to the upstream without the token or the
//! proof, with the verified identity in `X-Keyward-Client-Id`, `X-Keyward-Subject` and `X-Keyward-Scope`; headers
//! of those names sent by the caller are removed first.
//! Bodies stream both ways; upstream connections are pooled and kept alive. An upstream that fails is 502, one
//! that does not answer in time 504.

pub mod config;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keyward_client::{Claims, Verifier, VerifyLayer};
use serde_json::json;
use tokio::net::TcpListener;

use config::GatewayConfig;
use routes::Found;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1): never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The prefix of the identity headers the gateway sets; any the caller sends are dropped.
const IDENTITY_PREFIX: &str = "x-keyward-";

/// A running gateway's state.
pub struct Gateway {
    config: GatewayConfig,
    /// Per route, how its tokens are checked; `None` for public routes.
    checks: Vec<Option<VerifyLayer>>,
    token_header: Option<HeaderName>,
    client: Client<HttpConnector, Body>,
}

impl Gateway {
    /// Builds the verifier and the per-route checks.
    pub fn new(config: GatewayConfig) -> Result<Arc<Self>, String> {
        let mut builder =
            Verifier::builder(config.issuer.clone()).unknown_kid_interval(config.jwks_min_refetch);
        for a in &config.audiences {
            builder = builder.audience(a.clone());
        }
        if let Some(uri) = &config.jwks_uri {
            builder = builder.jwks_uri(uri.clone());
        }
        builder = builder.dpop_replay_cache(config.dpop_replay_cache);
        if let Some(origin) = &config.public_origin {
            builder = builder.public_origin(origin.clone());
        }
        let token_header = match &config.token_header {
            Some(h) => {
                builder = builder
                    .token_header(h)
                    .map_err(|e| format!("token_header: {e}"))?;
                Some(HeaderName::from_bytes(h.as_bytes()).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        if let Some((id, secret, cache)) = &config.introspection {
            builder = builder.introspection(id.clone(), secret.clone(), *cache);
        }
        let verifier = builder.build()?;
        let checks = config
            .routes
            .iter()
            .map(|r| {
                (!r.public).then(|| {
                    let mut layer = verifier.layer();
                    for s in &r.scopes {
                        layer = layer.require_scope(s.clone());
                    }
                    if r.introspect {
                        layer.introspect()
                    } else {
                        layer
                    }
                })
            })
            .collect();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .build(connector);
        Ok(Arc::new(Gateway {
            config,
            checks,
            token_header,
            client,
        }))
    }
}

/// Serves until `shutdown` completes.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let timeouts = gateway.config.timeouts;
    let router = crate::http::logged(Router::new().fallback(handle)).with_state(gateway);
    crate::conn::serve(listener, router, timeouts, shutdown).await;
    Ok(())
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

async fn handle(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request<Body>,
) -> Response {
    let path = req.uri().path();
    if let Err(why) = routes::check_path(path) {
        return error(StatusCode::BAD_REQUEST, "invalid_request", why);
    }
    let index = match routes::find(&gw.config.routes, req.method(), path) {
        Found::Route(i, _) => i,
        Found::MethodNotAllowed(methods) => {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "this method is not allowed here",
            );
            let allow: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            return r;
        }
        Found::NotFound => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no route for this request",
            );
        }
    };
    let claims = match &gw.checks[index] {
        None => None,
        Some(check) => match check
            .check_request(req.method(), req.uri(), req.headers())
            .await
        {
            Ok(claims) => Some(claims),
            Err(e) => return e.into_response(),
        },
    };
    forward(&gw, req, claims.as_ref(), peer).await
}

/// Sends the request upstream with the token removed and the identity added; streams the answer back.
async fn forward(
    gw: &Gateway,
    req: Request<Body>,
    claims: Option<&Claims>,
    peer: SocketAddr,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{}{path_and_query}", gw.config.upstream).parse::<Uri>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request target cannot be forwarded",
        );
    };
    let host = parts.headers.get(header::HOST).cloned();
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    headers.remove(header::HOST);
    // The token (Bearer or DPoP) and the proof are the caller's credentials, not the API's business. Another
    // scheme (Basic on a public route) is the upstream's own and passes.
    let ours = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop")
        });
    if ours {
        headers.remove(header::AUTHORIZATION);
    }
    headers.remove(HeaderName::from_static("dpop"));
    if let Some(h) = &gw.token_header {
        headers.remove(h);
    }
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(IDENTITY_PREFIX))
        .cloned()
        .collect();
    for k in spoofed {
        headers.remove(k);
    }
    if let Some(c) = claims {
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        set("x-keyward-client-id", &c.client_id);
        set("x-keyward-subject", &c.sub);
        set("x-keyward-scope", c.scope.as_deref().unwrap_or(""));
    }
    if let Some(h) = host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), h);
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    parts.uri = uri;
    let upstream = Request::from_parts(parts, body);
    match tokio::time::timeout(gw.config.upstream_timeout, gw.client.request(upstream)).await {
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "the API did not answer in time",
        ),
        // The caller's body came too slowly to be forwarded: the caller's fault, not the API's.
        Ok(Err(e)) if crate::conn::BodyTimedOut::caused(&e) => error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "upstream request failed");
            error(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the API could not be reached",
            )
        }
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
    }
}

/// Removes hop-by-hop headers, including those the `Connection` header names (RFC 9110 §7.6.1). `keyward agent`'s
/// proxy uses it too.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for h in HOP_BY_HOP
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
    {
        headers.remove(h);
    }
}

/// Runs the gateway on `config` until `shutdown`.
pub async fn run(
    config: GatewayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (listen, upstream, issuer, routes) = (
        config.listen,
        config.upstream.clone(),
        config.issuer.clone(),
        config.routes.len(),
    );
    let gateway = Gateway::new(config).map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(listen = %bound, %upstream, %issuer, routes, "keyward gateway is serving");
    serve(gateway, listener, shutdown).await
}
