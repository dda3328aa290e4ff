//! The calling side's tower layer: adds a [`TokenSource`]'s token to every outgoing request (as
//! `Authorization: Bearer`, RFC 6750 §2.1, or in a header such as Walmart's `WM_SEC.ACCESS_TOKEN`; a DPoP-bound
//! token as `Authorization: DPoP` with a fresh proof for the request, RFC 9449 §7.1), and when the API answers
//! 401 because of the token (RFC 6750 §3.1 `invalid_token`), gets a new one and sends the request once more, or,
//! when it asks for a DPoP nonce (RFC 9449 §9), sends it once more with a proof that carries it. The request body
//! must be `Clone` so that it can be sent again.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::header::{HeaderMap, HeaderName, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use tower::{BoxError, Layer, Service};

use crate::source::{AccessToken, TokenSource};

/// Adds a token source's token to requests.
#[derive(Debug, Clone)]
pub struct AttachTokenLayer {
    source: TokenSource,
    header: Option<HeaderName>,
}

impl AttachTokenLayer {
    /// Sends the token where the source's dialect says API calls carry it (`Authorization: Bearer` unless a
    /// preset names another header).
    pub fn new(source: TokenSource) -> Result<Self, String> {
        let header = match source.api_header() {
            Some(h) => Some(parse_header(h)?),
            None => None,
        };
        Ok(AttachTokenLayer { source, header })
    }

    /// Sends the token in `header` instead, as its bare value.
    pub fn header(mut self, header: &str) -> Result<Self, String> {
        self.header = Some(parse_header(header)?);
        Ok(self)
    }

    /// Sends the token as `Authorization: Bearer`.
    pub fn bearer(mut self) -> Self {
        self.header = None;
        self
    }
}

fn parse_header(h: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("`{h}` is not a header name"))
}

impl<S> Layer<S> for AttachTokenLayer {
    type Service = AttachToken<S>;
    fn layer(&self, inner: S) -> AttachToken<S> {
        AttachToken {
            inner,
            source: self.source.clone(),
            header: self.header.clone(),
        }
    }
}

/// The service [`AttachTokenLayer`] makes.
#[derive(Debug, Clone)]
pub struct AttachToken<S> {
    inner: S,
    source: TokenSource,
    header: Option<HeaderName>,
}

impl<S, B, RB> Service<Request<B>> for AttachToken<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Clone + Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service that was made ready serves the first try; a fresh clone serves the retry (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let source = self.source.clone();
        let header = self.header.clone();
        Box::pin(async move {
            let token = source.token().await?;
            let again = request.clone();
            let response = inner
                .call(with_token(request, &token, header.as_ref())?)
                .await
                .map_err(Into::into)?;
            // A nonce is kept whatever the answer, so that the next proof to this API carries it.
            let asked_nonce = token.remember_nonce(again.uri(), response.headers())
                && crate::proof::nonce_required(response.status(), response.headers());
            // One more try at most, for whichever reason the answer gives: the same token with a proof carrying
            // the API's nonce, or a fresh token in place of one the API refused.
            let retry_with = if asked_nonce {
                token
            } else if token_refused(response.status(), response.headers()) {
                source.reject(&token);
                source.token().await?
            } else {
                return Ok(response);
            };
            tower::ServiceExt::ready(&mut inner)
                .await
                .map_err(Into::into)?
                .call(with_token(again, &retry_with, header.as_ref())?)
                .await
                .map_err(Into::into)
        })
    }
}

/// The request with the token's headers: one for a Bearer token, two (the token and a proof made now for this
/// method and URL) for a DPoP token.
fn with_token<B>(
    mut request: Request<B>,
    token: &AccessToken,
    header: Option<&HeaderName>,
) -> Result<Request<B>, BoxError> {
    let headers = token.request_headers(header, request.method(), request.uri())?;
    for (name, value) in headers {
        request.headers_mut().insert(name, value);
    }
    Ok(request)
}

/// Whether an answer says the token itself is no good, so that a new token may help: a 401 whose challenges name
/// `invalid_token` (RFC 6750 §3.1) or no error code at all (a server that says only `Bearer`). A 401 naming another
/// error (`invalid_request`) is not helped by a new token, nor is any other status.
pub fn token_refused(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::UNAUTHORIZED
        && headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .all(|v| error_code(v.as_bytes()).is_none_or(|c| c == "invalid_token"))
}

/// The `error` parameter of a `WWW-Authenticate` challenge (RFC 6750 §3), if it has one.
fn error_code(value: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("error=") {
        let at = from + i;
        // A parameter's own name, not the tail of another's (`x-error=`) or of a quoted value.
        let starts = at == 0 || matches!(lower.as_bytes()[at - 1], b' ' | b',' | b'\t');
        if starts {
            let v = &text[at + "error=".len()..];
            let v = v.trim_start_matches('"');
            let end = v.find(['"', ',', ' ']).unwrap_or(v.len());
            return Some(v[..end].to_owned());
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with(status: u16, challenge: Option<&str>) -> bool {
        let mut headers = HeaderMap::new();
        if let Some(c) = challenge {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_str(c).unwrap());
        }
        token_refused(StatusCode::from_u16(status).unwrap(), &headers)
    }

    #[test]
    fn only_a_token_refusal_is_retried() {
        assert!(with(
            401,
            Some(r#"Bearer realm="api", error="invalid_token", error_description="expired""#)
        ));
        assert!(with(401, Some("Bearer error=invalid_token")));
        assert!(with(401, Some("Bearer realm=\"api\"")));
        assert!(with(401, Some(r#"Bearer realm="x-error=y""#)));
        assert!(with(401, None));
        assert!(!with(401, Some(r#"Bearer error="invalid_request""#)));
        assert!(!with(
            401,
            Some(r#"Bearer error_description="x", error="insufficient_scope""#)
        ));
        assert!(!with(403, Some(r#"Bearer error="insufficient_scope""#)));
    }
}
