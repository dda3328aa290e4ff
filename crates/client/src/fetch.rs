//! Fetching JSON documents (discovery, JWKS, introspection) over HTTP or HTTPS, with a size limit and a timeout.
//! One pooled client per verifier or token source; TLS is rustls on aws-lc-rs with the Mozilla root set, plus any
//! extra certificate authorities the caller trusts (a private CA's PEM file).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

/// The largest document read: a JWKS with dozens of RSA keys fits easily.
const MAX_DOCUMENT: usize = 256 * 1024;

/// A pooled HTTP(S) client.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `http://` and `https://` URLs.
pub(crate) fn client() -> HttpClient {
    client_trusting(&[])
}

/// A client for `http://` and `https://` URLs that trusts `extra` authorities beside the Mozilla roots.
pub fn client_trusting(extra: &[CertificateDer<'static>]) -> HttpClient {
    let https = match tls_config(extra) {
        Ok(tls) => hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build(),
        // The aws-lc-rs provider always supports the default versions; keep the stock roots if it ever does not.
        Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build(),
    };
    Client::builder(TokioExecutor::new()).build(https)
}

/// The TLS settings keyward-client connects with: rustls on aws-lc-rs, trusting the Mozilla roots and `extra`
/// authorities (from [`read_ca_file`]). For a caller that makes its own connections the same way (`keyward
/// agent`'s proxy).
pub fn tls_config(extra: &[CertificateDer<'static>]) -> Result<rustls::ClientConfig, String> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // Certificates were parsed when the file was read; one rustls cannot use is left out rather than failing
    // every connection (`read_ca_file` has already refused a file with none it can use).
    roots.add_parsable_certificates(extra.iter().cloned());
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots).with_no_client_auth())
    .map_err(|e| format!("TLS settings: {e}"))
}

/// The certificates of a PEM file of certificate authorities; an error names the file and what is wrong.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{shown}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown}: {e}"))?;
    let mut store = rustls::RootCertStore::empty();
    let (usable, _) = store.add_parsable_certificates(certs.iter().cloned());
    if usable == 0 {
        return Err(format!("{shown}: no usable CA certificate in the file"));
    }
    Ok(certs)
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

/// `GET url` expecting a 200 JSON answer of at most 256 KiB within `timeout`: the document, and how long it may
/// be cached when the server said (`Cache-Control: max-age`). For Keyward's own outbound fetches (client JWKS,
/// federated issuers' discovery and keys), which follow the same limits as the verifier's.
pub async fn get_json(
    client: &HttpClient,
    url: &str,
    timeout: Duration,
) -> Result<(Value, Option<Duration>), String> {
    json(client, url, None, timeout)
        .await
        .map(|f| (f.body, f.max_age))
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
