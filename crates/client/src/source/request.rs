//! One token request (RFC 6749 §4.4.2, client credentials) in a service's dialect, with the client's credential
//! (a secret, or a client assertion: RFC 7521 §4.2) and a DPoP proof where the source holds a key (RFC 9449 §5),
//! sent within one bound; `answer.rs` reads what comes back.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, DATE, RETRY_AFTER, USER_AGENT};
use hyper::{Request, StatusCode};
use serde_json::{Map, Value};

use super::answer::{Answer, Read, classify, read_json, read_xml, retry};
use super::credential::{self, Credential, Presented, Unpresentable};
use super::dialect::{Accept, AuthMethod, BodyFormat, Dialect, HeaderValue};
use super::timing;
use crate::fetch::HttpClient;
use crate::proof::{self as dpop, Dpop};

/// The largest answer read: a token response is a few kilobytes at most.
const MAX_ANSWER: usize = 64 * 1024;

/// What a token request asks for, apart from the credentials.
#[derive(Debug, Clone)]
pub(crate) struct Ask {
    pub(crate) token_url: String,
    pub(crate) dialect: Dialect,
    /// Body parameters beside `grant_type` and the credentials: `scope`, `audience`, `resource`, extras.
    pub(crate) params: Vec<(String, String)>,
}

/// A client's id and what it authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) client_id: String,
    pub(crate) credential: Credential,
}

/// Sends one token request and reads the answer. With a DPoP key, an answer asking for a nonce
/// (`use_dpop_nonce` with a `DPoP-Nonce`, RFC 9449 §8) is followed by one more request carrying it, and any nonce
/// the server sends is kept for the next proof.
pub(crate) async fn exchange(
    http: &HttpClient,
    ask: &Ask,
    credentials: &Credentials,
    dpop: Option<&Dpop>,
    timeout: Duration,
    now: SystemTime,
) -> Answer {
    // One bound for the whole exchange: a platform token fetched, each try's head and body.
    let deadline = timing::later(tokio::time::Instant::now(), timeout);
    let unix = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut tries = 0;
    loop {
        tries += 1;
        // Presented afresh on each try: an assertion's `jti` is spent once, even by a refused request.
        let presented = match credential::present(
            &credentials.credential,
            http,
            &credentials.client_id,
            &ask.token_url,
            deadline.saturating_duration_since(tokio::time::Instant::now()),
            unix,
        )
        .await
        {
            Ok(p) => p,
            Err(Unpresentable::Retry(why)) => return retry(why),
            Err(Unpresentable::Refused {
                status,
                error,
                description,
            }) => {
                return Answer::Refused {
                    status,
                    error,
                    description: Some(description),
                };
            }
        };
        let proof = match dpop
            .map(|d| d.proof("POST", &ask.token_url, None, unix))
            .transpose()
        {
            Ok(p) => p,
            Err(why) => return refused_locally(why),
        };
        let request = match build(ask, &credentials.client_id, &presented, proof.as_deref()) {
            Ok(r) => r,
            Err(why) => return refused_locally(why),
        };
        let (status, read, retry_after, nonce) =
            match send(http, request, deadline, timeout, &ask.token_url, dpop, now).await {
                Ok(sent) => sent,
                Err(answer) => return answer,
            };
        let wants_nonce = status == StatusCode::BAD_REQUEST
            && read.as_ref().and_then(|r| r.error.as_deref()) == Some("use_dpop_nonce");
        if dpop.is_some() && wants_nonce && nonce && tries == 1 {
            continue;
        }
        return classify(status, read, retry_after, &ask.token_url, dpop.is_some());
    }
}

/// A request that could not be built: nothing a retry would change.
fn refused_locally(why: String) -> Answer {
    Answer::Refused {
        status: 0,
        error: "invalid_request".into(),
        description: Some(why),
    }
}

/// One try: the answer's status, its members, `Retry-After`, and whether it carried a `DPoP-Nonce` (kept).
async fn send(
    http: &HttpClient,
    request: Request<Full<Bytes>>,
    deadline: tokio::time::Instant,
    timeout: Duration,
    url: &str,
    dpop: Option<&Dpop>,
    now: SystemTime,
) -> Result<(StatusCode, Option<Read>, Option<Duration>, bool), Answer> {
    let response = match tokio::time::timeout_at(deadline, http.request(request)).await {
        Err(_) => return Err(retry(format!("{url}: no answer within {timeout:?}"))),
        Ok(Err(e)) => return Err(retry(format!("{url}: {}", chain(&e)))),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    let nonce = dpop.is_some_and(|d| d.remember_token_endpoint(response.headers()));
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after =
        header(RETRY_AFTER).and_then(|v| timing::retry_after(&v, header(DATE).as_deref(), now));
    let xml = header(CONTENT_TYPE).is_some_and(|t| t.to_ascii_lowercase().contains("xml"));
    let body = match tokio::time::timeout_at(
        deadline,
        Limited::new(response.into_body(), MAX_ANSWER).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => return Err(retry(format!("{url}: reading the answer: {e}"))),
        Err(_) => {
            return Err(retry(format!(
                "{url}: the answer did not arrive within {timeout:?}"
            )));
        }
    };
    let read = if xml {
        read_xml(&body)
    } else {
        read_json(&body)
    };
    Ok((status, read, retry_after, nonce))
}

/// An error and its sources, for a network failure's message.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The HTTP request: credentials, parameters and headers where the dialect puts them. A client assertion goes in
/// the body with `client_id` (RFC 7521 §4.2), whatever the dialect says of secrets; a DPoP proof in `DPoP`.
fn build(
    ask: &Ask,
    client_id: &str,
    presented: &Presented,
    proof: Option<&str>,
) -> Result<Request<Full<Bytes>>, String> {
    let dialect = &ask.dialect;
    let mut params: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
    match presented {
        Presented::Secret(secret) if dialect.auth == AuthMethod::Post => {
            params.push(("client_id", client_id));
            params.push(("client_secret", secret.expose()));
        }
        Presented::Secret(_) => {}
        Presented::Assertion(assertion) => {
            params.push(("client_id", client_id));
            params.push((
                "client_assertion_type",
                keyward_core::assertion::CLIENT_ASSERTION_TYPE,
            ));
            params.push(("client_assertion", assertion));
        }
    }
    params.extend(ask.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (content_type, body) = match dialect.body {
        BodyFormat::Form => (
            "application/x-www-form-urlencoded",
            params
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        keyward_core::basic::form_encode(k),
                        keyward_core::basic::form_encode(v)
                    )
                })
                .collect::<Vec<_>>()
                .join("&"),
        ),
        BodyFormat::Json => {
            let object: Map<String, Value> = params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                .collect();
            ("application/json", Value::Object(object).to_string())
        }
    };
    let accept = match dialect.accept {
        Accept::Json => "application/json",
        Accept::Xml => "application/xml",
    };
    let mut builder = Request::builder()
        .method("POST")
        .uri(&ask.token_url)
        .header(CONTENT_TYPE, content_type)
        .header(ACCEPT, accept)
        .header(
            USER_AGENT,
            concat!("keyward-client/", env!("CARGO_PKG_VERSION")),
        );
    if let (Presented::Secret(secret), AuthMethod::Basic) = (presented, dialect.auth) {
        let mut basic = hyper::header::HeaderValue::try_from(keyward_core::basic::encode(
            client_id,
            secret.expose(),
        ))
        .map_err(|_| "the client id cannot be sent in a header".to_owned())?;
        basic.set_sensitive(true);
        builder = builder.header(AUTHORIZATION, basic);
    }
    if let Some(proof) = proof {
        builder = builder.header(dpop::DPOP, dpop::header_value(proof)?);
    }
    for (name, value) in &dialect.headers {
        let value = match value {
            HeaderValue::Fixed(v) => v.clone(),
            HeaderValue::Correlation => correlation_id(),
        };
        builder = builder.header(name.as_str(), value);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("the token request cannot be built: {e}"))
}

/// A random (version 4) UUID, as correlation ids are usually written.
pub(crate) fn correlation_id() -> String {
    let mut b = [0u8; 16];
    // The system's random source does not fail on the platforms rustls runs on; zeros would still be an id.
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_and_headers_fresh() {
        let ask = Ask {
            token_url: "http://h/t".into(),
            dialect: Dialect {
                headers: vec![("WM_QOS.CORRELATION_ID".into(), HeaderValue::Correlation)],
                ..Dialect::default()
            },
            params: vec![("scope".into(), "a b".into())],
        };
        let secret = Presented::Secret(crate::Secret::new("s p"));
        let a = build(&ask, "id:1", &secret, None).unwrap();
        let b = build(&ask, "id:1", &secret, None).unwrap();
        assert_eq!(
            a.headers()[AUTHORIZATION],
            keyward_core::basic::encode("id:1", "s p").as_str()
        );
        assert_ne!(
            a.headers()["wm_qos.correlation_id"],
            b.headers()["wm_qos.correlation_id"]
        );
        assert_eq!(correlation_id().len(), 36);
    }

    #[tokio::test]
    async fn an_assertion_goes_in_the_body_with_the_client_id_and_no_authorization() {
        for dialect in [
            Dialect::default(),
            Dialect {
                auth: AuthMethod::Post,
                ..Dialect::default()
            },
        ] {
            let ask = Ask {
                token_url: "http://h/t".into(),
                dialect,
                params: vec![("audience".into(), "api".into())],
            };
            let r = build(
                &ask,
                "id 1",
                &Presented::Assertion("a.b.c".into()),
                Some("p.r.f"),
            )
            .unwrap();
            assert!(r.headers().get(AUTHORIZATION).is_none());
            assert_eq!(r.headers()["dpop"], "p.r.f");
            let body = r.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(
                std::str::from_utf8(&body).unwrap(),
                "grant_type=client_credentials&client_id=id+1&client_assertion_type=\
                 urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c&audience=api"
            );
        }
    }
}
