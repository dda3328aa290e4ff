//! Strict `application/x-www-form-urlencoded` decoding (RFC 6749 Appendix B, WHATWG URL §5.1).
//! Unlike lenient decoders it refuses what a lenient one would silently repair: a broken `%` escape, bytes that
//! are not UTF-8, and control characters are `invalid_request`, never a replacement character or a 500.

use crate::error::OAuthError;

/// Decodes one form component: `+` is a space, `%XX` a byte; the result must be UTF-8 with no control character.
pub fn decode_component(input: &str) -> Result<String, OAuthError> {
    decode(input, false)
}

/// `decode_component`, where `lines` also lets through the line breaks and tabs a multi-line text box sends
/// (CR, LF, TAB); every other control character is still refused.
fn decode(input: &str, lines: bool) -> Result<String, OAuthError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| hex(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex(*b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(OAuthError::invalid_request("malformed percent-encoding")),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    let text = String::from_utf8(out)
        .map_err(|_| OAuthError::invalid_request("a parameter is not valid UTF-8"))?;
    let line_break = |c: char| lines && matches!(c, '\r' | '\n' | '\t');
    if text.chars().any(|c| c.is_control() && !line_break(c)) {
        return Err(OAuthError::invalid_request(
            "a parameter contains a control character",
        ));
    }
    Ok(text)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Encodes one component for a query string or form: every byte but RFC 3986 `unreserved` is percent-encoded,
/// so whatever a client put in `state` comes back byte for byte and cannot break out of its parameter.
pub fn encode_component(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decoded request parameters, in order, repeats kept so that they can be refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a whole form body (or a query string). An empty body has no parameters; a parameter with an empty
    /// name (`a=1&&b=2`, `=value`, a trailing `&`) is `invalid_request`: RFC 6749 Appendix B names every
    /// parameter, and a lenient parser that skipped such segments would read a different request than a strict one
    /// in front of it.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        Self::parse_with_text(body, &[])
    }

    /// `parse`, where the values of the parameters named in `text` may hold line breaks and tabs: the fields of
    /// a page's multi-line text boxes (`<textarea>`), whose line breaks every browser sends as CR LF.
    pub fn parse_with_text(body: &[u8], text: &[&str]) -> Result<Self, OAuthError> {
        let body = std::str::from_utf8(body)
            .map_err(|_| OAuthError::invalid_request("the body is not valid UTF-8"))?;
        let mut pairs = Vec::new();
        if body.is_empty() {
            return Ok(Self { pairs });
        }
        for segment in body.split('&') {
            let (name, value) = segment.split_once('=').unwrap_or((segment, ""));
            let name = decode_component(name)?;
            if name.is_empty() {
                return Err(OAuthError::invalid_request(
                    "a parameter has an empty name (`&&`, `=value` or a trailing `&`)",
                ));
            }
            let lines = text.contains(&name.as_str());
            pairs.push((name, decode(value, lines)?));
        }
        Ok(Self { pairs })
    }

    /// Builds parameters from already-decoded pairs (a JSON body, for example).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once", and a parameter sent
    /// without a value is treated as omitted.
    pub fn single(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut found = None;
        for (k, v) in &self.pairs {
            if k == name {
                if found.is_some() {
                    return Err(OAuthError::invalid_request(format!(
                        "parameter `{name}` is repeated"
                    )));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found.filter(|v| !v.is_empty()))
    }

    /// Like [`Params::single`], but the parameter is required.
    pub fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.single(name)?
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter `{name}` is missing")))
    }

    /// Every non-empty value of a parameter that may repeat, in order (an HTML form's checkbox group; never an
    /// OAuth parameter, which RFC 6749 §3.2 lets appear once).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Whether any parameter with this name is present (even empty).
    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// Whether there are no parameters at all.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every parameter name, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encoding_round_trips() {
        let hostile = "a b&c=d%e+f/<script>\"'#?é";
        assert_eq!(
            decode_component(&encode_component(hostile)).unwrap(),
            hostile
        );
        assert!(
            encode_component(hostile)
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
        );
    }

    #[test]
    fn decodes_plus_and_percent() {
        assert_eq!(decode_component("a+b%2Bc%3A%25").unwrap(), "a b+c:%");
        assert_eq!(decode_component("%C3%A9t%C3%A9").unwrap(), "été");
    }

    #[test]
    fn text_boxes_may_hold_line_breaks_and_nothing_else_may() {
        let body = b"jwk=%7B%0D%0A%09%22kty%22%7D&name=a";
        let p = Params::parse_with_text(body, &["jwk"]).unwrap();
        assert_eq!(p.single("jwk").unwrap(), Some("{\r\n\t\"kty\"}"));
        assert!(Params::parse(body).is_err());
        assert!(Params::parse_with_text(b"name=a%0Ab", &["jwk"]).is_err());
        assert!(Params::parse_with_text(b"jwk=a%00b", &["jwk"]).is_err());
        assert!(Params::parse_with_text(b"jwk=a%1Bb", &["jwk"]).is_err());
    }

    #[test]
    fn refuses_broken_escapes_bad_utf8_and_controls() {
        for bad in ["%", "%4", "%zz", "%FF", "%00", "a%0Ab", "%C3"] {
            assert!(decode_component(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repeated_parameter_is_invalid_request() {
        let p = Params::parse(b"grant_type=client_credentials&scope=a&scope=b").unwrap();
        assert_eq!(p.single("grant_type").unwrap(), Some("client_credentials"));
        assert_eq!(
            p.single("scope").unwrap_err().code,
            crate::ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn empty_value_counts_as_omitted() {
        let p = Params::parse(b"scope=&a=1").unwrap();
        assert_eq!(p.single("scope").unwrap(), None);
        assert!(p.required("scope").is_err());
        assert!(p.contains("scope"));
        assert!(Params::parse(b"").unwrap().is_empty());
    }

    #[test]
    fn empty_names_are_invalid_request() {
        for bad in [
            &b"a=b&&c=d"[..],
            b"=value",
            b"a=b&",
            b"&a=b",
            b"&",
            b"a=b&=c",
            b"%20=x&=",
        ] {
            let e = Params::parse(bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidRequest, "{bad:?}");
        }
        // A name of one space is a name.
        assert!(Params::parse(b"+=x").is_ok());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = decode_component(&s);
            let _ = Params::parse(s.as_bytes());
        }

        #[test]
        fn round_trips_printable_text(s in "[ -~\u{a0}-\u{10ffff}]{0,40}") {
            let encoded: String = s.bytes().map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
                b' ' => "+".to_string(),
                b => format!("%{b:02X}"),
            }).collect();
            prop_assert_eq!(decode_component(&encoded).unwrap(), s);
        }
    }
}
