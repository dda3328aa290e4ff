//! The protocol decisions of a token endpoint alias: which response format an `Accept` header asks for
//! (RFC 9110 §12.5.1), and which grant types the endpoint serves, optionally per value of a market header.
//! The server reads the headers and renders; every choice is made here.

use std::collections::BTreeMap;

use crate::error::{ErrorCode, OAuthError};

/// A response body format, with the media type it is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`, always offered (RFC 6749 §5.1).
    Json,
    /// `application/xml`, offered where an endpoint enables XML.
    Xml,
    /// The same XML sent as `text/xml` (RFC 7303 §4), for a client that accepts only that name.
    TextXml,
}

impl Format {
    /// Whether the body is XML.
    pub fn is_xml(self) -> bool {
        matches!(self, Format::Xml | Format::TextXml)
    }

    /// The `Content-Type` it is sent with.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Xml => "application/xml;charset=UTF-8",
            Format::TextXml => "text/xml;charset=UTF-8",
        }
    }

    fn names(self) -> (&'static str, &'static str) {
        match self {
            Format::Json => ("application", "json"),
            Format::Xml => ("application", "xml"),
            Format::TextXml => ("text", "xml"),
        }
    }
}

/// RFC 9110 §12.5.1: picks the format an `Accept` header prefers among JSON and, when `xml` is offered,
/// `application/xml` and `text/xml`, each weighed on its own.
///
/// No header (or an empty one) means JSON. Each offer takes the quality of the most specific media range that
/// matches it (`type/subtype` over `type/*` over `*/*`; among equally specific ranges, the first). The highest
/// quality wins, then the more specific match, then the earlier offer (JSON, `application/xml`, `text/xml`).
/// Elements that do not parse are skipped. `None` means nothing offered is acceptable: a 406.
pub fn negotiate(accept: Option<&str>, xml: bool) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(Format::Json);
    };
    let ranges: Vec<Range<'_>> = accept.split(',').filter_map(Range::parse).collect();
    let offers: &[Format] = if xml {
        &[Format::Json, Format::Xml, Format::TextXml]
    } else {
        &[Format::Json]
    };
    let mut best: Option<(Format, u16, u8)> = None;
    for &format in offers {
        let mut matched: Option<(u16, u8)> = None;
        for r in &ranges {
            if let Some(s) = r.matches(format) {
                if matched.is_none_or(|(_, ms)| s > ms) {
                    matched = Some((r.q, s));
                }
            }
        }
        let Some((q, specificity)) = matched.filter(|&(q, _)| q > 0) else {
            continue;
        };
        // Earlier offers win full ties.
        if best.is_none_or(|(_, bq, bs)| (q, specificity) > (bq, bs)) {
            best = Some((format, q, specificity));
        }
    }
    best.map(|(f, _, _)| f)
}

/// One media range of an `Accept` header, with its quality in thousandths.
struct Range<'a> {
    kind: &'a str,
    subtype: &'a str,
    q: u16,
}

impl<'a> Range<'a> {
    fn parse(element: &'a str) -> Option<Self> {
        let mut parts = element.split(';');
        let (kind, subtype) = parts.next()?.trim().split_once('/')?;
        let (kind, subtype) = (kind.trim(), subtype.trim());
        if kind.is_empty() || subtype.is_empty() || (kind == "*" && subtype != "*") {
            return None;
        }
        let mut q = 1000;
        for param in parts {
            if let Some((name, value)) = param.split_once('=') {
                if name.trim().eq_ignore_ascii_case("q") {
                    q = parse_quality(value.trim())?;
                }
            }
        }
        Some(Range { kind, subtype, q })
    }

    /// How specifically this range names `format`: 3 exact, 2 `type/*`, 1 `*/*`; `None` when it does not.
    fn matches(&self, format: Format) -> Option<u8> {
        let (kind, subtype) = format.names();
        if !self.kind.eq_ignore_ascii_case(kind) {
            return (self.kind == "*").then_some(1);
        }
        if self.subtype.eq_ignore_ascii_case(subtype) {
            Some(3)
        } else if self.subtype == "*" {
            Some(2)
        } else {
            None
        }
    }
}

/// RFC 9110 §12.4.2: `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_quality(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The grant types a configuration may name: the RFC 6749 grants Keyward serves or is building. `password` and
/// `implicit` are never offered (RFC 9700 §2.4, §2.1.2).
pub const GRANT_NAMES: [&str; 3] = ["client_credentials", "authorization_code", "refresh_token"];

/// Which grant types an endpoint serves, optionally narrowed per value of a market header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRule {
    /// Grant types the endpoint serves, from [`GRANT_NAMES`].
    pub grant_types: Vec<String>,
    /// The per-market narrowing, if any.
    pub market: Option<MarketRule>,
}

/// Grant types per value of a header (Walmart's `WM_MARKET`: `us`, `mx`, `ca`, `cl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketRule {
    /// The header's name, for messages.
    pub header: String,
    /// Lower-case market value → the grant types served there.
    pub grants: BTreeMap<String, Vec<String>>,
}

impl MarketRule {
    /// The market a header value names, compared without regard to ASCII case. A missing (`None`) or unknown
    /// value is `invalid_request` naming the header and the values it takes; the raw value is never echoed.
    pub fn market(&self, value: Option<&str>) -> Result<&str, OAuthError> {
        let Some(value) = value.map(str::trim) else {
            return Err(OAuthError::invalid_request(format!(
                "header {} is required",
                self.header
            )));
        };
        self.grants
            .keys()
            .find(|k| k.eq_ignore_ascii_case(value))
            .map(String::as_str)
            .ok_or_else(|| {
                let known: Vec<&str> = self.grants.keys().map(String::as_str).collect();
                OAuthError::invalid_request(format!(
                    "header {} must be one of: {}",
                    self.header,
                    known.join(", ")
                ))
            })
    }
}

impl GrantRule {
    /// RFC 6749 §5.2 `unsupported_grant_type` when the endpoint, or the endpoint in `market`, does not serve
    /// `grant_type`. A grant served here still goes on to the grant's own checks.
    pub fn check(&self, grant_type: &str, market: Option<&str>) -> Result<(), OAuthError> {
        let Some(grant) = self.grant_types.iter().find(|g| *g == grant_type) else {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "this endpoint does not serve this grant type",
            ));
        };
        if let (Some(rule), Some(market)) = (&self.market, market) {
            let served = rule.grants.get(market).is_some_and(|g| g.contains(grant));
            if !served {
                let elsewhere: Vec<&str> = rule
                    .grants
                    .iter()
                    .filter(|(_, g)| g.contains(grant))
                    .map(|(m, _)| m.as_str())
                    .collect();
                // Where else it is configured is said, not whether the server offers it there yet.
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    format!(
                        "{grant} is not available in market {market}; the markets configured for it: {}",
                        if elsewhere.is_empty() {
                            "none".to_owned()
                        } else {
                            elsewhere.join(", ")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_accept_is_json() {
        assert_eq!(negotiate(None, true), Some(Format::Json));
        assert_eq!(negotiate(Some("  "), true), Some(Format::Json));
    }

    #[test]
    fn exact_types() {
        assert_eq!(
            negotiate(Some("application/json"), true),
            Some(Format::Json)
        );
        assert_eq!(negotiate(Some("application/xml"), true), Some(Format::Xml));
        assert_eq!(negotiate(Some("text/xml"), true), Some(Format::TextXml));
        assert_eq!(negotiate(Some("Application/XML"), true), Some(Format::Xml));
        assert_eq!(negotiate(Some("application/xml"), false), None);
        assert_eq!(negotiate(Some("text/html"), true), None);
    }

    #[test]
    fn wildcards_prefer_json_then_the_named_type() {
        assert_eq!(negotiate(Some("*/*"), true), Some(Format::Json));
        assert_eq!(negotiate(Some("application/*"), true), Some(Format::Json));
        assert_eq!(negotiate(Some("text/*"), true), Some(Format::TextXml));
        assert_eq!(negotiate(Some("text/*"), false), None);
        assert_eq!(
            negotiate(Some("application/xml, */*"), true),
            Some(Format::Xml)
        );
        assert_eq!(
            negotiate(Some("application/xml, */*"), false),
            Some(Format::Json)
        );
    }

    #[test]
    fn quality_decides() {
        assert_eq!(
            negotiate(Some("application/json;q=0.5, application/xml"), true),
            Some(Format::Xml)
        );
        assert_eq!(
            negotiate(Some("application/xml;q=0.9, application/json;q=0.95"), true),
            Some(Format::Json)
        );
        // A more specific range with q=0 refuses what a wildcard would allow.
        assert_eq!(negotiate(Some("application/json;q=0, */*"), false), None);
        assert_eq!(
            negotiate(Some("application/json;q=0, */*"), true),
            Some(Format::Xml)
        );
    }

    #[test]
    fn the_two_xml_names_are_weighed_apart_whatever_their_order() {
        for accept in [
            "application/xml;q=0, text/xml",
            "text/xml, application/xml;q=0",
        ] {
            assert_eq!(
                negotiate(Some(accept), true),
                Some(Format::TextXml),
                "{accept}"
            );
        }
        assert_eq!(
            negotiate(Some("text/xml;q=0.5, application/xml"), true),
            Some(Format::Xml)
        );
        // Among equally specific ranges for one type, the first counts.
        assert_eq!(
            negotiate(Some("application/json;q=0, application/json"), false),
            None
        );
        assert_eq!(Format::TextXml.media_type(), "text/xml;charset=UTF-8");
        assert!(Format::TextXml.is_xml() && !Format::Json.is_xml());
    }

    #[test]
    fn malformed_elements_are_skipped() {
        assert_eq!(
            negotiate(Some("garbage, application/xml"), true),
            Some(Format::Xml)
        );
        assert_eq!(negotiate(Some("application/xml;q=2"), true), None);
        assert_eq!(negotiate(Some("*/json"), true), None);
        assert_eq!(parse_quality("0.123"), Some(123));
        assert_eq!(parse_quality("1.000"), Some(1000));
        assert_eq!(parse_quality("1.001"), None);
        assert_eq!(parse_quality("0.1234"), None);
        assert_eq!(parse_quality("-0"), None);
    }

    fn walmart() -> GrantRule {
        let all: Vec<String> = GRANT_NAMES.iter().map(|s| s.to_string()).collect();
        let cc = vec!["client_credentials".to_owned()];
        GrantRule {
            grant_types: all.clone(),
            market: Some(MarketRule {
                header: "WM_MARKET".into(),
                grants: BTreeMap::from([
                    ("us".into(), all),
                    ("mx".into(), cc.clone()),
                    ("ca".into(), cc.clone()),
                    ("cl".into(), cc),
                ]),
            }),
        }
    }

    #[test]
    fn markets() {
        let rule = walmart();
        let m = rule.market.as_ref().unwrap();
        assert_eq!(m.market(Some("US")).unwrap(), "us");
        assert_eq!(m.market(Some(" cl ")).unwrap(), "cl");
        let e = m.market(Some("br")).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.description.contains("WM_MARKET") && !e.description.contains("br"));
        assert!(m.market(None).unwrap_err().description.contains("required"));
        assert!(rule.check("client_credentials", Some("mx")).is_ok());
        assert!(rule.check("authorization_code", Some("us")).is_ok());
        let e = rule.check("authorization_code", Some("mx")).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedGrantType);
        assert!(e.description.contains("configured for it: us"), "{e}");
        let e = rule.check("password", Some("us")).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedGrantType);
        assert!(!e.description.contains("password"));
    }

    #[test]
    fn without_markets() {
        let rule = GrantRule {
            grant_types: vec!["client_credentials".into()],
            market: None,
        };
        assert!(rule.check("client_credentials", None).is_ok());
        assert!(rule.check("refresh_token", None).is_err());
    }
}
