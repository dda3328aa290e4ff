//! The token of a request: `Authorization: Bearer` (RFC 6750 §2.1), `Authorization: DPoP` (RFC 9449 §7.1), or
//! the configured header (a bearer token under another name). Refuses a token in the query string and a request
//! carrying two different tokens. Whether the token may come that way is the verifier's decision, not this one's.

use axum::http::{HeaderMap, HeaderName, header};

use crate::claims::VerifyError;

/// How a request presented its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Authorization: Bearer`, or the configured header.
    Bearer,
    /// `Authorization: DPoP`: the request must carry a proof (RFC 9449 §7.1).
    Dpop,
}

/// The token of a request and how it came; `token_header` is the configured header that may carry a bearer token.
pub(crate) fn presented<'h>(
    headers: &'h HeaderMap,
    query: Option<&str>,
    token_header: Option<&HeaderName>,
) -> Result<(Scheme, &'h str), VerifyError> {
    if query.is_some_and(|q| {
        q.split('&')
            .any(|p| p.split('=').next() == Some("access_token"))
    }) {
        return Err(VerifyError::Malformed(
            "access tokens are not accepted in the query string",
        ));
    }
    let authorization = match headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .collect::<Vec<_>>()[..]
    {
        [] => None,
        [one] => {
            let text = one
                .to_str()
                .map_err(|_| VerifyError::Malformed("malformed Authorization header"))?;
            match text.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    Some((Scheme::Bearer, b64token(token.trim())?))
                }
                // RFC 9449 §7.1: the DPoP scheme's credentials have the same syntax as a bearer token's.
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("dpop") => {
                    Some((Scheme::Dpop, b64token(token.trim())?))
                }
                // Another scheme carries no token of ours: the client is told to use one.
                _ => None,
            }
        }
        _ => return Err(VerifyError::Malformed("more than one Authorization header")),
    };
    let custom = match token_header {
        None => None,
        Some(name) => match headers.get_all(name).iter().collect::<Vec<_>>()[..] {
            [] => None,
            [one] => {
                let text = one
                    .to_str()
                    .map_err(|_| VerifyError::Malformed("malformed token header"))?
                    .trim();
                let text = text
                    .get(..7)
                    .filter(|p| p.eq_ignore_ascii_case("bearer "))
                    .map_or(text, |_| text[7..].trim());
                Some(b64token(text)?)
            }
            _ => return Err(VerifyError::Malformed("more than one token header")),
        },
    };
    match (authorization, custom) {
        (Some((_, a)), Some(b)) if a != b => Err(VerifyError::Malformed(
            "two different tokens in one request",
        )),
        (Some(found), _) => Ok(found),
        (None, Some(t)) => Ok((Scheme::Bearer, t)),
        (None, None) => Err(VerifyError::Missing),
    }
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn b64token(token: &str) -> Result<&str, VerifyError> {
    let body = token.trim_end_matches('=');
    let ok = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if ok {
        Ok(token)
    } else {
        Err(VerifyError::Malformed("malformed bearer token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// What a verifier configured with `header` reads of a request: `presented`, and the bearer token alone as
    /// `Verifier::token_from` keeps it.
    struct V(Option<HeaderName>);

    impl V {
        fn token_header(&self) -> Option<&HeaderName> {
            self.0.as_ref()
        }

        fn token_from<'h>(
            &self,
            h: &'h HeaderMap,
            q: Option<&str>,
        ) -> Result<&'h str, VerifyError> {
            match presented(h, q, self.token_header())? {
                (Scheme::Bearer, token) => Ok(token),
                (Scheme::Dpop, _) => Err(VerifyError::Missing),
            }
        }
    }

    fn verifier(header: Option<&str>) -> V {
        V(header.map(|h| HeaderName::from_bytes(h.as_bytes()).unwrap()))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[tokio::test]
    async fn token_sources() {
        let v = verifier(Some("WM_SEC.ACCESS_TOKEN"));
        let h = headers(&[("authorization", "Bearer a.b.c")]);
        assert_eq!(v.token_from(&h, None), Ok("a.b.c"));
        let h = headers(&[("wm_sec.access_token", "a.b.c")]);
        assert_eq!(v.token_from(&h, None), Ok("a.b.c"));
        let h = headers(&[
            ("authorization", "Bearer a.b.c"),
            ("wm_sec.access_token", "a.b.c"),
        ]);
        assert_eq!(v.token_from(&h, None), Ok("a.b.c"));
        let h = headers(&[
            ("authorization", "Bearer a.b.c"),
            ("wm_sec.access_token", "x.y.z"),
        ]);
        assert!(matches!(
            v.token_from(&h, None),
            Err(VerifyError::Malformed(_))
        ));
        assert_eq!(
            v.token_from(&HeaderMap::new(), None),
            Err(VerifyError::Missing)
        );
        let h = headers(&[("authorization", "Basic YTpi")]);
        assert_eq!(v.token_from(&h, None), Err(VerifyError::Missing));
        let h = headers(&[("authorization", "Bearer a b")]);
        assert!(matches!(
            v.token_from(&h, None),
            Err(VerifyError::Malformed(_))
        ));
        let h = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert!(matches!(
            v.token_from(&h, None),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            v.token_from(&HeaderMap::new(), Some("x=1&access_token=abc")),
            Err(VerifyError::Malformed(_))
        ));
        // Without a configured header, that header is just another header.
        let plain = verifier(None);
        let h = headers(&[("wm_sec.access_token", "a.b.c")]);
        assert_eq!(plain.token_from(&h, None), Err(VerifyError::Missing));
    }

    #[test]
    fn the_dpop_scheme_is_told_apart() {
        let v = verifier(Some("WM_SEC.ACCESS_TOKEN"));
        let h = headers(&[("authorization", "DPoP a.b.c")]);
        assert_eq!(
            presented(&h, None, v.token_header()),
            Ok((Scheme::Dpop, "a.b.c"))
        );
        assert_eq!(v.token_from(&h, None), Err(VerifyError::Missing));
        let h = headers(&[
            ("authorization", "dpop a.b.c"),
            ("wm_sec.access_token", "a.b.c"),
        ]);
        assert_eq!(
            presented(&h, None, v.token_header()),
            Ok((Scheme::Dpop, "a.b.c"))
        );
        let h = headers(&[
            ("authorization", "DPoP a.b.c"),
            ("wm_sec.access_token", "x.y.z"),
        ]);
        assert!(matches!(
            presented(&h, None, v.token_header()),
            Err(VerifyError::Malformed(_))
        ));
        let h = headers(&[("authorization", "DPoP a b")]);
        assert!(matches!(
            presented(&h, None, v.token_header()),
            Err(VerifyError::Malformed(_))
        ));
    }
}
