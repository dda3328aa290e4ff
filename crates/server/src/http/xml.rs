//! XML bodies for token endpoints that offer XML: Walmart's `OAuthTokenDTO` for a token and a Walmart-style
//! `<errors>` document carrying the RFC 6749 §5.2 code for an error. Two fixed shapes of escaped text, so they
//! are written directly rather than through an XML library.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use keyward_core::endpoint::Format;

use keyward_core::grant::TokenResponse;

const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#;

/// Escapes text for an element's content (XML 1.0 §2.4), dropping characters XML 1.0 cannot carry at all.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 §2.2: only tab, newline and carriage return below U+0020.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            // Nor U+FFFE and U+FFFF.
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A token response as Walmart documents it:
/// `<OAuthTokenDTO><accessToken>…</accessToken><tokenType>Bearer</tokenType><expiresIn>900</expiresIn></OAuthTokenDTO>`,
/// with `<refreshToken>` (delegated grants) and `<scope>` after them when the token has them.
pub(crate) fn token(t: &TokenResponse) -> String {
    let refresh = t
        .refresh_token
        .as_deref()
        .map(|r| format!("<refreshToken>{}</refreshToken>", escape(r)))
        .unwrap_or_default();
    let scope = t
        .scope
        .as_deref()
        .map(|s| format!("<scope>{}</scope>", escape(s)))
        .unwrap_or_default();
    format!(
        "{DECLARATION}<OAuthTokenDTO><accessToken>{}</accessToken><tokenType>{}</tokenType><expiresIn>{}</expiresIn>{refresh}{scope}</OAuthTokenDTO>",
        escape(&t.access_token),
        escape(t.token_type),
        t.expires_in
    )
}

/// An error: `<errors><error><code>invalid_client</code><description>…</description></error></errors>`, the
/// element names of Walmart's error documents carrying the RFC 6749 §5.2 `error` and `error_description`.
pub(crate) fn error(code: &str, description: &str) -> String {
    format!(
        "{DECLARATION}<errors><error><code>{}</code><description>{}</description></error></errors>",
        escape(code),
        escape(description)
    )
}

/// An XML body with its status and the `Content-Type` of the negotiated XML media type.
pub(crate) fn response(status: StatusCode, format: Format, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_drops_what_xml_cannot_hold() {
        assert_eq!(
            escape("a<b>&\"c'\u{1}\td\u{FFFF}"),
            "a&lt;b&gt;&amp;&quot;c&apos;\td"
        );
    }

    #[test]
    fn token_shape() {
        let t = TokenResponse {
            access_token: "h.p.s".into(),
            token_type: "Bearer",
            expires_in: 900,
            refresh_token: None,
            scope: None,
        };
        assert_eq!(
            token(&t),
            format!(
                "{DECLARATION}<OAuthTokenDTO><accessToken>h.p.s</accessToken><tokenType>Bearer</tokenType><expiresIn>900</expiresIn></OAuthTokenDTO>"
            )
        );
    }
}
