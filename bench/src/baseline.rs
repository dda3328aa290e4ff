//! The baselines, each a minimal hyper server run as its own process (`keyward-bench serve-hello ADDR`,
//! `keyward-bench serve-sign ADDR`): the machine's limit for answering HTTP with a token-sized body, and for the
//! work a token endpoint cannot avoid (parse the form and Basic header, check an HMAC digest in constant time, sign
//! an ES256 JWT with aws-lc-rs, as Keyward does). `keyward-bench serve-proxy ADDR UPSTREAM` is the limit for one
//! extra hop: a reverse proxy that forwards every request to UPSTREAM over pooled connections, bodies streamed.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyward_core::jwt::{self, AccessTokenClaims};
use keyward_core::resource::SigningAlg;
use keyward_core::{basic, form::Params};

/// The client the sign baseline accepts.
pub(crate) const CLIENT_ID: &str = "bench";
/// Its secret.
pub(crate) const CLIENT_SECRET: &str = "kw_sk_benchbenchbenchbenchbenchbenchbenchbenc";

struct Signer {
    key: EcdsaKeyPair,
    header: String,
    pepper: hmac::Key,
    digest: Vec<u8>,
    rng: SystemRandom,
    jti: AtomicU64,
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn sign(s: Arc<Signer>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let creds = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| basic::parse(h).ok().flatten());
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return respond(StatusCode::BAD_REQUEST, "{}".into());
    };
    let ok_form = Params::parse(&body)
        .ok()
        .and_then(|p| {
            p.single("grant_type")
                .ok()
                .flatten()
                .map(|g| g == "client_credentials")
        })
        .unwrap_or(false);
    let Some(creds) = creds.filter(|c| c.client_id == CLIENT_ID && ok_form) else {
        return respond(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_client"}"#.into(),
        );
    };
    // Constant-time check of the keyed digest, as Keyward stores secrets.
    if hmac::verify(&s.pepper, creds.client_secret.as_bytes(), &s.digest).is_err() {
        return respond(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_client"}"#.into(),
        );
    }
    let now = crate::now();
    let claims = AccessTokenClaims {
        iss: "http://127.0.0.1".into(),
        sub: CLIENT_ID.into(),
        aud: "https://bench.api".into(),
        exp: now + 900,
        iat: now,
        jti: s.jti.fetch_add(1, Ordering::Relaxed).to_string(),
        client_id: CLIENT_ID.into(),
        scope: None,
        nbf: None,
        cnf: None,
    };
    let Ok(input) = jwt::signing_input(&s.header, &claims) else {
        return respond(StatusCode::INTERNAL_SERVER_ERROR, "{}".into());
    };
    let Ok(sig) = s.key.sign(&s.rng, input.as_bytes()) else {
        return respond(StatusCode::INTERNAL_SERVER_ERROR, "{}".into());
    };
    let token = jwt::compact(input, sig.as_ref());
    respond(
        StatusCode::OK,
        format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":900}}"#),
    )
}

/// Serves a baseline on `addr` until killed; `upstream` is the proxy's (`serve-proxy`) and only its.
pub(crate) async fn serve(which: &str, addr: &str, upstream: Option<String>) -> anyhow::Result<()> {
    if which == "proxy" {
        let upstream = upstream.ok_or_else(|| anyhow::anyhow!("serve-proxy ADDR UPSTREAM"))?;
        return serve_proxy(addr, upstream).await;
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("key generation"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("key parse"))?;
    let _ = key.public_key();
    let pepper = hmac::Key::new(hmac::HMAC_SHA256, b"bench pepper");
    let digest = hmac::sign(&pepper, CLIENT_SECRET.as_bytes())
        .as_ref()
        .to_vec();
    let signer = Arc::new(Signer {
        key,
        header: jwt::encode_header(SigningAlg::ES256, "bench"),
        pepper,
        digest,
        rng,
        jti: AtomicU64::new(0),
    });
    // A token-sized body, so both baselines send about as many bytes as Keyward.
    let hello = Bytes::from(format!(
        r#"{{"access_token":"{}","token_type":"Bearer","expires_in":900}}"#,
        "x".repeat(420)
    ));
    let sign_mode = which == "sign";
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (signer, hello) = (signer.clone(), hello.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (signer, hello) = (signer.clone(), hello.clone());
                async move {
                    if sign_mode {
                        Ok::<_, Infallible>(sign(signer, req).await)
                    } else {
                        let _ = req.into_body().collect().await;
                        Ok(Response::new(Full::new(hello)))
                    }
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

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

/// Removes the hop-by-hop headers, those the `Connection` header names included.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

type ProxyBody = Either<Incoming, Full<Bytes>>;

/// One request forwarded to `upstream` (`http://host:port`, no path): the same method, path, query, headers and
/// body, without the hop-by-hop headers and with the upstream's `Host`; the answer streamed back the same way.
async fn forward(
    client: Client<HttpConnector, Incoming>,
    upstream: Arc<str>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let failed = |status: StatusCode| {
        let mut r = Response::new(Either::Right(Full::new(Bytes::new())));
        *r.status_mut() = status;
        r
    };
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{upstream}{path_and_query}").parse::<Uri>() else {
        return failed(StatusCode::BAD_REQUEST);
    };
    parts.uri = uri;
    strip_hop_by_hop(&mut parts.headers);
    // The client sets `Host` from the URI when there is none.
    parts.headers.remove(header::HOST);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Either::Left(body))
        }
        Err(_) => failed(StatusCode::BAD_GATEWAY),
    }
}

/// Serves the proxy on `addr` until killed, forwarding to `upstream` with a pooled hyper-util client.
async fn serve_proxy(addr: &str, upstream: String) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    let upstream: Arc<str> = upstream.trim_end_matches('/').into();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move { Ok::<_, Infallible>(forward(client, upstream, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
