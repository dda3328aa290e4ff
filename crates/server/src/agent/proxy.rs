//! Proxy mode: `/NAME/<path>?query` is sent to the API's `api_url/<path>?query` with the token added
//! (`Authorization: Bearer`, or the API's `token_header`, replacing any the app sent; a DPoP-bound token as
//! `Authorization: DPoP` with a proof made for this method and upstream URL), hop-by-hop headers removed and
//! `Host` the upstream's; bodies stream both ways. A 401 that says the token is no good (`invalid_token`, or no
//! error code) makes the token source drop it, and one that asks for a DPoP nonce has it kept; either way the
//! request is sent once more when it can be: an idempotent method whose body was small enough to keep. An API
//! that cannot be reached is 502, one that does not answer in time 504.

use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use axum::response::Response;
use http_body_util::{BodyExt, Limited};
use hyper::body::Body as _;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keyward_client::AccessToken;

use super::config::Settings;
use super::{Agent, Api, error, token};

/// The largest request body kept for a second try after a 401.
const MAX_REPLAY: u64 = 64 * 1024;

/// The client proxied requests leave through: pooled, HTTP or HTTPS (the Mozilla roots and `ca_file`).
pub(super) struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    timeout: Duration,
}

impl Upstream {
    pub(super) fn new(settings: &Settings) -> Result<Self, String> {
        let extra = match &settings.ca_file {
            Some(path) => {
                keyward_client::read_ca_file(path).map_err(|e| format!("ca_file: {e}"))?
            }
            None => Vec::new(),
        };
        let tls = keyward_client::tls_config(&extra)?;
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(Upstream {
            client,
            timeout: settings.upstream_timeout,
        })
    }
}

/// Forwards a proxy-mode request.
pub(super) async fn forward(agent: &Agent, req: Request<Body>) -> Response {
    let path = req.uri().path();
    let path = path.strip_prefix('/').unwrap_or(path);
    let (name, rest) = match path.split_once('/') {
        Some((name, rest)) => (name.to_owned(), format!("/{rest}")),
        None => (path.to_owned(), "/".to_owned()),
    };
    let Some(api) = agent.apis.get(&name) else {
        return agent.unknown(&name);
    };
    if api.proxy_requires_header && !token::flavored(req.headers()) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "proxy mode for `{name}` needs the header `Metadata-Flavor: Keyward` (proxy_requires_header)"
            ),
        );
    }
    let Some(base) = &api.api_url else {
        return error(
            StatusCode::NOT_FOUND,
            "no_api_url",
            &format!("API `{name}` has no api_url: token mode only (GET /v1/token/{name})"),
        );
    };
    // The upstream must not resolve the path to somewhere above api_url's own path.
    if let Err(why) = crate::gateway::routes::check_path(&rest) {
        return error(StatusCode::BAD_REQUEST, "invalid_request", why);
    }
    let target = match req.uri().query() {
        Some(q) => format!("{base}{rest}?{q}"),
        None => format!("{base}{rest}"),
    };
    let Ok(uri) = target.parse::<Uri>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request target cannot be forwarded",
        );
    };
    let (mut parts, body) = req.into_parts();
    prepare(&mut parts.headers, api);
    // A body is kept for a second try only where a retry is safe and cheap: idempotent, and known to be small.
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    );
    let small = body.size_hint().exact().is_some_and(|n| n <= MAX_REPLAY);
    let (kept, streamed) = if idempotent && small {
        match Limited::new(body, MAX_REPLAY as usize).collect().await {
            Ok(b) => (Some(b.to_bytes()), None),
            Err(e) if crate::conn::BodyTimedOut::caused(e.as_ref()) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body did not arrive in time",
                );
            }
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the request body could not be read",
                );
            }
        }
    } else {
        (None, Some(body))
    };
    let token = match api.source.token().await {
        Ok(t) => t,
        Err(e) => return token::unavailable(&name, &e),
    };
    let first_body = match (&kept, streamed) {
        (Some(b), _) => Body::from(b.clone()),
        (None, Some(body)) => body,
        (None, None) => Body::empty(),
    };
    let first = match send(agent, api, &parts, &uri, &token, first_body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    // Kept whatever the answer, so the next proof to this API carries the nonce.
    let asked_nonce = token.remember_nonce(&uri, first.headers())
        && keyward_client::dpop_nonce_required(first.status(), first.headers());
    if asked_nonce {
        // A body that could not be kept is not sent again: the app gets the 401 and its next call the nonce.
        let Some(kept) = kept else {
            return answer(first);
        };
        tracing::info!(api = %name, "the API asked for a DPoP nonce; sending once more with it");
        return match send(agent, api, &parts, &uri, &token, Body::from(kept)).await {
            Ok(r) => {
                token.remember_nonce(&uri, r.headers());
                answer(r)
            }
            Err(r) => r,
        };
    }
    if !keyward_client::token_refused(first.status(), first.headers()) {
        return answer(first);
    }
    // Dropped even when this request cannot be sent again, so that the next one gets a fresh token.
    api.source.reject(&token);
    let Some(kept) = kept else {
        return answer(first);
    };
    let fresh = match api.source.token().await {
        Ok(t) if t != token => t,
        // No other token to try: the API's own answer says why.
        _ => return answer(first),
    };
    tracing::info!(api = %name, "the API refused the token; sending once more with a fresh one");
    match send(agent, api, &parts, &uri, &fresh, Body::from(kept)).await {
        Ok(r) => answer(r),
        Err(r) => r,
    }
}

/// The app's headers as the upstream gets them: without hop-by-hop headers, `Host` (the client sets the
/// upstream's), token mode's header, or whatever the app put where the token goes.
fn prepare(headers: &mut HeaderMap, api: &Api) {
    crate::gateway::strip_hop_by_hop(headers);
    headers.remove(header::HOST);
    headers.remove("metadata-flavor");
    match &api.token_header {
        Some(h) => headers.remove(h),
        None => headers.remove(header::AUTHORIZATION),
    };
}

/// Sends one try upstream with `token`; an error is the answer to give (502, 504, 408).
async fn send(
    agent: &Agent,
    api: &Api,
    parts: &Parts,
    uri: &Uri,
    token: &AccessToken,
    body: Body,
) -> Result<Response<hyper::body::Incoming>, Response> {
    let mut headers = parts.headers.clone();
    // A DPoP token gets its proof here, for this try's method and upstream URL: a proof is good for one request.
    let Ok(added) = token.request_headers(api.token_header.as_ref(), &parts.method, uri) else {
        return Err(error(
            StatusCode::BAD_GATEWAY,
            "bad_token",
            "the token endpoint issued a token that cannot be sent in a header",
        ));
    };
    for (name, value) in added {
        headers.insert(name, value);
    }
    let mut upstream = Request::new(body);
    *upstream.method_mut() = parts.method.clone();
    *upstream.uri_mut() = uri.clone();
    *upstream.headers_mut() = headers;
    let sent = tokio::time::timeout(
        agent.upstream.timeout,
        agent.upstream.client.request(upstream),
    );
    match sent.await {
        Err(_) => Err(error(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "the API did not answer in time",
        )),
        // The app's body came too slowly to be forwarded: the app's doing, not the API's.
        Ok(Err(e)) if crate::conn::BodyTimedOut::caused(&e) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the API could not be reached");
            Err(error(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the API could not be reached",
            ))
        }
        Ok(Ok(r)) => Ok(r),
    }
}

/// The upstream's answer, streamed to the app without hop-by-hop headers.
fn answer(r: Response<hyper::body::Incoming>) -> Response {
    let (mut parts, body) = r.into_parts();
    crate::gateway::strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Body::new(body))
}
