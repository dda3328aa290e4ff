//! OpenTelemetry trace export for `keyward serve`, on when `otlp_endpoint` is set: the spans of Keyward's own code
//! (one `request` span per HTTP request) go over OTLP/HTTP, protobuf-encoded, to `{otlp_endpoint}/v1/traces`.
//!
//! Spans are batched on the SDK's own background thread and sent by a small hyper + rustls client that runs on the
//! server's Tokio runtime, so a slow or unreachable collector costs a request nothing: a full queue drops spans, a
//! failed export is retried, then dropped and logged by the SDK (target `opentelemetry_sdk`). Only spans are
//! exported, never log events, and only spans whose fields hold no secret or token (none of Keyward's does).
//! The standard `OTEL_BSP_*` variables tune the batches (e.g. `OTEL_BSP_SCHEDULE_DELAY`, 5000 ms by default) and
//! `OTEL_RESOURCE_ATTRIBUTES` adds resource attributes; `service.name` is always `keyward`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::runtime::Handle;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

/// `service.name` of the exported resource, and the name of the tracer.
pub const SERVICE_NAME: &str = "keyward";

/// How long one export (a request and its answer, retries included) may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutting down may wait for the last batch to be sent.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest collector answer read (a partial-success message at most).
const MAX_ANSWER: usize = 64 * 1024;

/// A running trace export: the tracer provider behind the layer [`Traces::layer`] returns.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Starts exporting to `{endpoint}/v1/traces` (`endpoint` is the configured `otlp_endpoint`, an http(s) base
    /// URL). `runtime` is the Tokio runtime the exports are sent from. Sends nothing yet: spans come through
    /// [`Traces::layer`].
    pub fn start(endpoint: &str, runtime: Handle) -> Result<Self, String> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = SpanExporter::builder()
            .with_http()
            .with_http_client(Sender::new(runtime))
            .with_endpoint(url.as_str())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("otlp_endpoint: cannot export traces to {url}: {e}"))?;
        let resource = Resource::builder()
            .with_service_name(SERVICE_NAME)
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Traces { provider })
    }

    /// The `tracing` layer that turns Keyward's spans into OpenTelemetry spans for this export.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer(SERVICE_NAME))
            .with_filter(filter_fn(exported))
    }

    /// Sends the spans still queued and stops the export, waiting 5 s at most. Never fails: a collector that is
    /// down by then only costs those spans (and a warning).
    pub async fn shutdown(self) {
        let provider = self.provider;
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT))
                .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the last spans may not have been exported"),
            Err(e) => tracing::warn!(error = %e, "the trace export did not shut down"),
        }
    }
}

/// What is exported: spans (never events) at INFO or above from Keyward's own code, whose fields are known to
/// hold no secret.
fn exported(meta: &Metadata<'_>) -> bool {
    meta.is_span() && *meta.level() <= Level::INFO && meta.target().starts_with("keyward")
}

/// The HTTP(S) client the exporter sends with. The SDK's batch thread drives exports with a plain executor that
/// has no Tokio reactor, so each request is spawned on the server's runtime and awaited from there.
#[derive(Debug, Clone)]
struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: Handle,
}

impl Sender {
    fn new(runtime: Handle) -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Sender {
            client: Client::builder(TokioExecutor::new()).build(https),
            runtime,
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for Sender {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            tokio::time::timeout(EXPORT_TIMEOUT, send(&client, request))
                .await
                .map_err(|_| HttpError::from("the OTLP collector did not answer in time"))?
        });
        sent.await?
    }
}

/// Sends `request` and reads the answer (up to [`MAX_ANSWER`] bytes).
async fn send(
    client: &Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    request: Request<Bytes>,
) -> Result<Response<Bytes>, HttpError> {
    let (parts, body) = request.into_parts();
    let answer = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = answer.into_parts();
    let body = Limited::new(body, MAX_ANSWER).collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}
