//! Fetching JSON documents (discovery, JWKS, introspection) over HTTP or HTTPS, with a size limit and a timeout.
//! One pooled client per verifier; TLS is rustls on aws-lc-rs with the Mozilla root set.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The largest document read: a JWKS with dozens of RSA keys fits easily.
const MAX_DOCUMENT: usize = 256 * 1024;

/// A pooled HTTP(S) client.
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `http://` and `https://` URLs.
pub(crate) fn client() -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// A fetched JSON document and how long it may be cached (`Cache-Control: max-age`), if the server said.
pub(crate) struct Fetched {
    pub(crate) body: Value,
    pub(crate) max_age: Option<Duration>,
}

/// `GET url` (or `POST` with a form body) expecting a 200 JSON answer.
pub(crate) async fn json(
    client: &HttpClient,
    url: &str,
    form: Option<(String, String)>,
    timeout: Duration,
) -> Result<Fetched, String> {
    let builder = Request::builder()
        .uri(url)
        .header(ACCEPT, "application/json");
    let request = match form {
        None => builder.method("GET").body(Full::default()),
        Some((authorization, body)) => builder
            .method("POST")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(hyper::header::AUTHORIZATION, authorization)
            .body(Full::new(Bytes::from(body))),
    }
    .map_err(|e| format!("bad URL {url}: {e}"))?;
    let response = tokio::time::timeout(timeout, client.request(request))
        .await
        .map_err(|_| format!("{url}: timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}: status {}", response.status()));
    }
    let max_age = response
        .headers()
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let body = tokio::time::timeout(
        timeout,
        Limited::new(response.into_body(), MAX_DOCUMENT).collect(),
    )
    .await
    .map_err(|_| format!("{url}: timed out"))?
    .map_err(|e| format!("{url}: {e}"))?
    .to_bytes();
    let body = serde_json::from_slice(&body).map_err(|_| format!("{url}: not JSON"))?;
    Ok(Fetched { body, max_age })
}

/// The `max-age` directive of a `Cache-Control` value (RFC 9111 §5.2.2.1); `no-store`/`no-cache` mean zero.
fn max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            age = v.trim_matches('"').parse().ok().map(Duration::from_secs);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
