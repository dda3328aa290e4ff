//! A token endpoint's answer (RFC 6749 §5.1 and §5.2, JSON or Walmart's XML) read into what the token source does
//! next: use the token (`Bearer`, or `DPoP` when a proof was sent: RFC 9449 §5), stop (the server refused the
//! request), or retry later (busy, down, or not an answer at all). Not the sending: that is `request.rs`.

use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Map, Value};

/// A token as the server gave it.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) access_token: String,
    pub(crate) token_type: String,
    /// `expires_in`, when the server said.
    pub(crate) lifetime: Option<Duration>,
    pub(crate) scope: Option<String>,
}

/// What the answer means for the token source.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A token.
    Token(Issued),
    /// The server refused the request as such (RFC 6749 §5.2): retrying the same request cannot help.
    Refused {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// The server is busy or down, or did not answer: retry, no sooner than `retry_after` where it said.
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
}

/// The members of an answer, from either format.
#[derive(Debug, Default)]
pub(super) struct Read {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<u64>,
    scope: Option<String>,
    pub(super) error: Option<String>,
    error_description: Option<String>,
}

/// What an answer of `status` means, its members read (`None`: not a token answer in either format); `dpop`:
/// whether the request carried a proof.
pub(super) fn classify(
    status: StatusCode,
    read: Option<Read>,
    retry_after: Option<Duration>,
    url: &str,
    dpop: bool,
) -> Answer {
    let read = read.unwrap_or_default();
    if status == StatusCode::OK {
        return match (read.access_token, read.token_type) {
            (Some(access_token), Some(token_type)) if !access_token.is_empty() => {
                // A server that does not do DPoP ignores the proof and issues a Bearer token (RFC 9449 §5).
                let known = if token_type.eq_ignore_ascii_case("bearer") {
                    Some("Bearer")
                } else if dpop && token_type.eq_ignore_ascii_case("dpop") {
                    Some("DPoP")
                } else {
                    None
                };
                match known {
                    Some(kind) => Answer::Token(Issued {
                        access_token,
                        token_type: kind.into(),
                        lifetime: read.expires_in.map(Duration::from_secs),
                        scope: read.scope,
                    }),
                    // RFC 6749 §7.1: a client must not use a token whose type it does not understand.
                    None => Answer::Refused {
                        status: 200,
                        error: "unsupported_token_type".into(),
                        description: Some(format!(
                            "the server issued a `{token_type}` token; only Bearer{} is used",
                            if dpop { " and DPoP" } else { "" }
                        )),
                    },
                }
            }
            // A 200 that is not a token: a proxy's page, a truncated body. The next try may be answered properly.
            _ => retry(format!(
                "{url}: status 200 without an access_token and token_type"
            )),
        };
    }
    let transient = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
    let described = |code: &Option<String>| {
        code.as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default()
    };
    if transient {
        return Answer::Retry {
            why: format!("{url}: status {status}{}", described(&read.error)),
            retry_after,
        };
    }
    Answer::Refused {
        status: status.as_u16(),
        error: read
            .error
            .unwrap_or_else(|| format!("http_{}", status.as_u16())),
        description: read.error_description,
    }
}

pub(super) fn read_json(body: &Bytes) -> Option<Read> {
    let v: Map<String, Value> = serde_json::from_slice(body).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    // `expires_in` is a number (RFC 6749 §5.1), though some servers send it as a string of digits.
    let expires_in = v.get("expires_in").and_then(|e| match e {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    Some(Read {
        access_token: text("access_token"),
        token_type: text("token_type"),
        expires_in,
        scope: text("scope"),
        error: text("error"),
        error_description: text("error_description"),
    })
}

/// Walmart's XML: `<OAuthTokenDTO><accessToken>…</accessToken><tokenType>…</tokenType><expiresIn>…</expiresIn>`,
/// or an `<errors><error><code>…</code><description>…</description></error></errors>` document.
pub(super) fn read_xml(body: &Bytes) -> Option<Read> {
    let text = std::str::from_utf8(body).ok()?;
    let doc = roxmltree::Document::parse(text).ok()?;
    let find = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .map(|t| t.trim().to_owned())
    };
    Some(Read {
        access_token: find("accessToken"),
        token_type: find("tokenType"),
        expires_in: find("expiresIn").and_then(|e| e.parse().ok()),
        scope: find("scope"),
        error: find("code"),
        error_description: find("description"),
    })
}

/// A failure worth another try.
pub(super) fn retry(why: String) -> Answer {
    Answer::Retry {
        why,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str, xml: bool) -> Answer {
        let body = Bytes::from(body.to_owned());
        let read = if xml {
            read_xml(&body)
        } else {
            read_json(&body)
        };
        classify(
            StatusCode::from_u16(status).unwrap(),
            read,
            None,
            "u",
            false,
        )
    }

    #[test]
    fn reads_json_and_walmart_xml() {
        let Answer::Token(t) = answer(
            200,
            r#"{"access_token":"a","token_type":"bearer","expires_in":"900"}"#,
            false,
        ) else {
            panic!()
        };
        assert_eq!(
            (t.access_token.as_str(), t.lifetime),
            ("a", Some(Duration::from_secs(900)))
        );
        let xml = r#"<?xml version="1.0"?><OAuthTokenDTO><accessToken>x&amp;y</accessToken><tokenType>Bearer</tokenType><expiresIn>900</expiresIn></OAuthTokenDTO>"#;
        let Answer::Token(t) = answer(200, xml, true) else {
            panic!()
        };
        assert_eq!(t.access_token, "x&y");
        let err = "<errors><error><code>invalid_client</code><description>no</description></error></errors>";
        let Answer::Refused {
            error, description, ..
        } = answer(401, err, true)
        else {
            panic!()
        };
        assert_eq!(
            (error.as_str(), description.as_deref()),
            ("invalid_client", Some("no"))
        );
    }

    #[test]
    fn busy_and_broken_servers_are_retried_refusals_are_not() {
        assert!(matches!(answer(429, "", false), Answer::Retry { .. }));
        assert!(matches!(answer(503, "<html>", false), Answer::Retry { .. }));
        assert!(matches!(answer(200, "<html>", false), Answer::Retry { .. }));
        let Answer::Refused { error, .. } = answer(400, r#"{"error":"invalid_scope"}"#, false)
        else {
            panic!()
        };
        assert_eq!(error, "invalid_scope");
        let Answer::Refused { error, .. } = answer(404, "", false) else {
            panic!()
        };
        assert_eq!(error, "http_404");
        let Answer::Refused { error, .. } =
            answer(200, r#"{"access_token":"a","token_type":"mac"}"#, false)
        else {
            panic!()
        };
        assert_eq!(error, "unsupported_token_type");
    }

    #[test]
    fn dpop_tokens_are_taken_only_when_a_proof_was_sent() {
        let dpop = r#"{"access_token":"a","token_type":"DPoP","expires_in":60}"#;
        let read = || read_json(&Bytes::from(dpop));
        let Answer::Token(t) = classify(StatusCode::OK, read(), None, "u", true) else {
            panic!()
        };
        assert_eq!(t.token_type, "DPoP");
        let Answer::Refused { error, .. } = classify(StatusCode::OK, read(), None, "u", false)
        else {
            panic!()
        };
        assert_eq!(error, "unsupported_token_type");
        let bearer = read_json(&Bytes::from(
            r#"{"access_token":"a","token_type":"Bearer"}"#,
        ));
        let Answer::Token(t) = classify(StatusCode::OK, bearer, None, "u", true) else {
            panic!()
        };
        assert_eq!(
            t.token_type, "Bearer",
            "a server without DPoP issues Bearer tokens"
        );
    }
}
