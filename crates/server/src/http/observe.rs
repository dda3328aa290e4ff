//! What every request leaves behind: one log line (method, path, status, latency, client id, correlation id) and
//! the request metrics (by endpoint, grant type and outcome, with a latency histogram). The correlation id comes
//! from the request's correlation header or is generated, and is echoed in `X-Correlation-ID`. Handlers of the
//! OAuth endpoints say which client and grant a request was for through an `Observed` response extension; no
//! secret or token is ever put in one.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use keyward_core::client::GrantType;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::app::App;

/// The longest correlation value echoed and logged.
pub(crate) const CORRELATION_MAX: usize = 200;

/// The header a generated (or received) correlation id is echoed in.
static CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// Request headers read as a correlation id, besides the token endpoint aliases' own.
const CORRELATION_HEADERS: [&str; 2] = ["x-correlation-id", "x-request-id"];

/// What an OAuth handler tells the log and the metrics about a request.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    /// `token`, `introspect` or `revoke`.
    pub endpoint: &'static str,
    /// The grant type asked for, on the token endpoint (`none` elsewhere, `other` when unknown).
    pub grant: &'static str,
    /// `ok`, or the answer's error code.
    pub outcome: &'static str,
    /// The client that authenticated, if one did.
    pub client_id: Option<String>,
}

impl Observed {
    /// A request to `endpoint` with the `grant_type` it sent, if any.
    pub(crate) fn new(endpoint: &'static str, grant_type: Option<&str>) -> Self {
        let grant = match grant_type.map(str::parse::<GrantType>) {
            None => "none",
            Some(Ok(g)) => g.as_str(),
            Some(Err(_)) => "other",
        };
        Observed {
            endpoint,
            grant,
            outcome: "ok",
            client_id: None,
        }
    }

    /// Notes the outcome (`Err` holds the error code) and attaches itself to `response`.
    pub(crate) fn attach(mut self, outcome: Result<(), &'static str>, response: &mut Response) {
        if let Err(code) = outcome {
            self.outcome = code;
        }
        response.extensions_mut().insert(self);
    }
}

/// The endpoint label of a request no handler described.
fn endpoint_of(path: &str) -> &'static str {
    match path {
        "/oauth2/authorize" | "/oauth2/consent" => "authorize",
        "/oauth2/jwks" => "jwks",
        "/healthz" | "/readyz" => "health",
        p if p.starts_with("/.well-known/") => "discovery",
        p if p.starts_with("/oauth2/token/detail") => "token_detail",
        p if p.starts_with("/admin/") => "admin",
        p if p.starts_with("/console") || p.starts_with("/assets/") => "console",
        "/login" | "/logout" | "/account" => "console",
        _ => "other",
    }
}

/// A received correlation value when it is safe to echo and log: visible ASCII and spaces, not too long.
pub(crate) fn correlation_text(v: &HeaderValue) -> Option<&str> {
    let text = v.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= CORRELATION_MAX
        && text.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    ok.then_some(text)
}

fn correlation(app: &App, headers: &HeaderMap) -> Option<String> {
    let configured = app
        .settings
        .token_endpoints
        .iter()
        .filter_map(|e| e.correlation_header.as_ref())
        .map(|h| &h.name);
    CORRELATION_HEADERS
        .iter()
        .filter_map(|h| headers.get(*h))
        .chain(configured.filter_map(|h| headers.get(h)))
        .find_map(correlation_text)
        .map(str::to_owned)
}

/// The layer: runs each request in a span carrying its correlation id, then logs and counts it. A plain tower
/// layer rather than `from_fn`, which boxes and clones the inner service on every request.
#[derive(Clone)]
pub(crate) struct ObserveLayer(pub(crate) App);

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observing<S>;

    fn layer(&self, inner: S) -> Observing<S> {
        Observing {
            app: self.0.clone(),
            inner,
        }
    }
}

/// The service `ObserveLayer` wraps around the routes.
#[derive(Clone)]
pub(crate) struct Observing<S> {
    app: App,
    inner: S,
}

impl<S> tower::Service<Request> for Observing<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let app = self.app.clone();
        let started = Instant::now();
        let correlation = correlation(&app, req.headers()).unwrap_or_else(generated_id);
        let method = req.method().clone();
        let endpoint_guess = endpoint_of(req.uri().path());
        // For an OpenTelemetry export (`otlp_endpoint`): a server span (`otel.kind`, the one field added for it)
        // with the method, the path and the status as attributes, set on the span's OpenTelemetry side only so
        // that log lines do not repeat them. No secret or token goes in.
        let span =
            tracing::info_span!("request", correlation_id = %correlation, otel.kind = "server");
        // A disabled span means no INFO log line and no export: then the path is not even copied.
        let traced = !span.is_disabled();
        let path = traced.then(|| req.uri().path().to_owned());
        if let Some(path) = &path {
            span.set_attribute("http.request.method", method.as_str().to_owned());
            span.set_attribute("url.path", path.clone());
        }
        let answer = self.inner.call(req).instrument(span.clone());
        Box::pin(async move {
            let Ok(mut response) = answer.await;
            let seconds = started.elapsed().as_secs_f64();
            let status = response.status();
            let observed = response.extensions_mut().remove::<Observed>();
            let (endpoint, grant, outcome, client_id) = match &observed {
                Some(o) => (o.endpoint, o.grant, o.outcome, o.client_id.as_deref()),
                None => (endpoint_guess, "none", outcome_of(status), None),
            };
            app.metrics.request(endpoint, grant, outcome, seconds);
            if let Some(path) = &path {
                span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
                if status.is_server_error() {
                    span.set_status(opentelemetry::trace::Status::error(""));
                }
                // Strings go in as `&str`: the text format quotes and escapes them (so what a client put in the
                // path or the correlation header cannot forge a field), JSON writes them as strings.
                tracing::info!(
                    method = method.as_str(),
                    path = path.as_str(),
                    status = status.as_u16(),
                    latency_ms = seconds * 1_000.0,
                    client_id = client_id.unwrap_or(""),
                    correlation_id = correlation.as_str(),
                    "request"
                );
            }
            if !response.headers().contains_key(&CORRELATION_HEADER) {
                // The string becomes the header's bytes without a copy.
                if let Ok(v) = HeaderValue::try_from(correlation) {
                    response.headers_mut().insert(CORRELATION_HEADER.clone(), v);
                }
            }
            Ok(response)
        })
    }
}

/// A new correlation id: 24 hex digits, a random prefix drawn once per process and a counter, unique within the
/// process and unlikely to meet another process's. Not a secret, so no random draw per request.
fn generated_id() -> String {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| u64::from_be_bytes(crate::crypto::random()));
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:08x}{n:016x}", prefix >> 32)
}

/// The outcome label of a response no handler described: its status class.
fn outcome_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=399 => "ok",
        429 => "rate_limited",
        400..=499 => "client_error",
        _ => "server_error",
    }
}
