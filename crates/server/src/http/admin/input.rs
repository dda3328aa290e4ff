//! What the admin API reads from a request: JSON bodies, path parameters and query strings. Every rejection is in
//! the admin error shape and names the field; text Keyward cannot store (NUL, and in query strings any control
//! character) and `null` where the API description marks no member nullable are refused before anything reads the
//! input. Not the OAuth endpoints' parser (`http/extract.rs`), which never names what a client sent.

use std::collections::HashSet;

use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::http::error::ApiError;
use crate::http::extract::BODY_LIMIT;

/// A JSON body type of the admin API.
pub(crate) trait Input: DeserializeOwned {
    /// Top-level members whose `null` means "absent", as the API description marks them nullable. `null`
    /// anywhere else is refused: a client that sends `{"alg": null}` did not ask for every algorithm.
    const NULLABLE: &'static [&'static str] = &[];
}

/// A JSON object body (`Content-Type: application/json`).
pub(crate) struct Body<T>(pub T);

impl<T: Input, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::Plain {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "invalid_request",
                message: "Content-Type must be application/json".into(),
            });
        }
        let bytes = read(req).await?;
        parse(&bytes).map(Body)
    }
}

/// An optional JSON object body: an empty one gives the default value. Any `Content-Type` is read as JSON, so a
/// `curl -d '{…}'` (sent as a form) still works.
pub(crate) struct OptionalBody<T>(pub T);

impl<T: Input + Default, S: Send + Sync> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        parse(&bytes).map(OptionalBody)
    }
}

/// Whether the request says its body is JSON (`application/json`, or a `+json` type), as axum's `Json` decides.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json") || sub.to_ascii_lowercase().ends_with("+json"))
}

async fn read(req: Request) -> Result<axum::body::Bytes, ApiError> {
    // Too large (413), too slow (408), or cut off (400): as at the OAuth endpoints.
    axum::body::to_bytes(req.into_body(), BODY_LIMIT)
        .await
        .map_err(|e| crate::http::extract::body_error(&e))
}

/// Reads a body: JSON, an object, no member given twice, no NUL in any text, `null` only where `T` allows it,
/// then `T` itself with the path of any member it refuses.
fn parse<T: Input>(bytes: &[u8]) -> Result<T, ApiError> {
    // `Value` keeps the last of two members with one name; this walk refuses them first.
    serde_json::from_slice::<Distinct>(bytes).map_err(|e| {
        let text = e.to_string();
        let text = text.split(" at line ").next().unwrap_or(&text).to_owned();
        match e.classify() {
            serde_json::error::Category::Data => ApiError::bad_request(text),
            _ => ApiError::bad_request(format!("the body is not valid JSON: {text}")),
        }
    })?;
    let mut value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(members) = &mut value else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    for (name, member) in members.iter_mut() {
        if member.is_null() && T::NULLABLE.contains(&name.as_str()) {
            continue;
        }
        check_member(name, member)?;
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        match path.as_str() {
            "." => ApiError::bad_request(e.into_inner().to_string()),
            _ => ApiError::bad_request(format!("{path}: {}", e.into_inner())),
        }
    })
}

/// A JSON document walked for one rule: no object gives a member twice.
struct Distinct;

impl<'de> Deserialize<'de> for Distinct {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Walk;
        impl<'de> Visitor<'de> for Walk {
            type Value = Distinct;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Distinct, A::Error> {
                let mut seen = HashSet::new();
                while let Some(name) = map.next_key::<String>()? {
                    map.next_value::<Distinct>()?;
                    if !seen.insert(name.clone()) {
                        return Err(A::Error::custom(format!("{name}: given twice")));
                    }
                }
                Ok(Distinct)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Distinct, A::Error> {
                while seq.next_element::<Distinct>()?.is_some() {}
                Ok(Distinct)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Distinct, E> {
                Ok(Distinct)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Distinct, E> {
                Ok(Distinct)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Distinct, E> {
                Ok(Distinct)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Distinct, E> {
                Ok(Distinct)
            }
            fn visit_str<E>(self, _: &str) -> Result<Distinct, E> {
                Ok(Distinct)
            }
            fn visit_unit<E>(self) -> Result<Distinct, E> {
                Ok(Distinct)
            }
        }
        d.deserialize_any(Walk)
    }
}

/// Refuses NUL in text and `null` at `path` and below, and writes a number with no fraction (`15.0`, which JSON
/// Schema's `integer` admits) as the integer it is.
fn check_member(path: &str, value: &mut Value) -> Result<(), ApiError> {
    match value {
        Value::Null => Err(ApiError::bad_request(format!("{path}: must not be null"))),
        Value::String(s) if s.contains('\0') => Err(nul(path)),
        Value::Number(n) => {
            if let Some(whole) = n.as_f64().filter(|_| n.is_f64()).and_then(integral) {
                *value = whole;
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter_mut()
            .enumerate()
            .try_for_each(|(i, v)| check_member(&format!("{path}[{i}]"), v)),
        Value::Object(members) => members.iter_mut().try_for_each(|(k, v)| {
            if k.contains('\0') {
                return Err(ApiError::bad_request(format!(
                    "{path}: a member's name must not contain NUL (U+0000)"
                )));
            }
            check_member(&format!("{path}.{k}"), v)
        }),
        _ => Ok(()),
    }
}

/// The integer a float with no fraction stands for, when 64 bits hold it exactly.
fn integral(f: f64) -> Option<Value> {
    // 2^63 and 2^64 as floats: the bounds of i64 and u64, exclusive above.
    const I64_END: f64 = 9_223_372_036_854_775_808.0;
    const U64_END: f64 = 18_446_744_073_709_551_616.0;
    if !f.is_finite() || f.fract() != 0.0 {
        return None;
    }
    if (0.0..U64_END).contains(&f) {
        Some(Value::from(f as u64))
    } else if (-I64_END..0.0).contains(&f) {
        Some(Value::from(f as i64))
    } else {
        None
    }
}

fn nul(field: &str) -> ApiError {
    ApiError::bad_request(format!("{field}: must not contain NUL (U+0000)"))
}

/// Path parameters; NUL in one, or bytes that are not UTF-8 once decoded, is refused naming it.
pub(crate) struct Params<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::bad_request("a path parameter is not UTF-8 once percent-decoded")
            })?;
        for (name, value) in &raw {
            if value.contains('\0') {
                return Err(ApiError::bad_request(format!(
                    "path parameter `{name}`: must not contain NUL (U+0000)"
                )));
            }
        }
        // Every parameter is a string and was read above, so this cannot fail on a routed request.
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Params(v))
            .map_err(|_| ApiError::bad_request("malformed path parameters"))
    }
}

/// Query parameters, each at most once, decoded strictly (`+` and `%XX`, UTF-8, no control character), then read
/// as `T` from their text: numeric and boolean members use [`integer`], [`page_size`] or [`boolean`].
pub(crate) struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut members = Map::new();
        let query = parts.uri.query().unwrap_or("");
        for segment in query.split('&').filter(|_| !query.is_empty()) {
            let (name, value) = segment.split_once('=').unwrap_or((segment, ""));
            // As in a form (RFC 6749 Appendix B): every parameter has a name.
            if name.is_empty() {
                return Err(ApiError::bad_request(
                    "a query parameter has an empty name (`&&`, `=value` or a trailing `&`)",
                ));
            }
            let name = decode(name)
                .map_err(|m| ApiError::bad_request(format!("a query parameter's name: {m}")))?;
            let value = decode(value)
                .map_err(|m| ApiError::bad_request(format!("query parameter `{name}`: {m}")))?;
            if members.insert(name.clone(), Value::String(value)).is_some() {
                return Err(ApiError::bad_request(format!(
                    "query parameter `{name}` is repeated"
                )));
            }
        }
        serde_path_to_error::deserialize(Value::Object(members))
            .map(Q)
            .map_err(|e| {
                let path = e.path().to_string();
                match path.as_str() {
                    "." => ApiError::bad_request(format!("query: {}", e.into_inner())),
                    _ => ApiError::bad_request(format!(
                        "query parameter `{path}`: {}",
                        e.into_inner()
                    )),
                }
            })
    }
}

/// One query component, decoded as strictly as a form (`keyward_core::form::decode_component`): `+` is a space,
/// `%XX` a byte, and the text must be UTF-8 without control characters (no stored text holds one, and PostgreSQL
/// cannot hold NUL).
fn decode(raw: &str) -> Result<String, String> {
    keyward_core::form::decode_component(raw).map_err(|e| e.description.into_owned())
}

/// An integer given as text, any number of digits, or a number with no fraction (`15.0`, `1e3`, which JSON
/// Schema's `integer` admits): beyond the range of 64 bits it saturates, so a page position past every id reads as
/// "past every id" rather than as an error.
fn saturating(text: &str) -> Result<i64, String> {
    let not_integer = || format!("must be an integer, not {text:?}");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(match (text.parse::<i64>(), negative) {
            (Ok(n), _) => n,
            (Err(_), true) => i64::MIN,
            (Err(_), false) => i64::MAX,
        });
    }
    // Only digits, a point, an exponent and signs, so `inf` and `NaN` (which Rust's parser reads) stay refused.
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return Err(not_integer());
    }
    match text.parse::<f64>() {
        // `as` saturates at the bounds of i64, as the digits above do.
        Ok(f) if f.is_finite() && f.fract() == 0.0 => Ok(f as i64),
        _ => Err(not_integer()),
    }
}

/// An optional integer query member (`before`, `hours`).
pub(crate) fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let text = String::deserialize(d)?;
    saturating(&text).map(Some).map_err(D::Error::custom)
}

/// The most items a page holds.
pub(crate) const PAGE_MAX: i64 = 1_000;
/// The size of a page when `limit` is absent.
pub(crate) const PAGE_DEFAULT: i64 = 100;

/// A page size (`limit`): any integer, clamped to 1 ..= [`PAGE_MAX`] as the API description says.
pub(crate) fn page_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    integer(d).map(|n| n.map(|n| n.clamp(1, PAGE_MAX)))
}

/// A boolean query member: `true` or `false`.
pub(crate) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match String::deserialize(d)?.as_str() {
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        other => Err(D::Error::custom(format!(
            "must be true or false, not {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_decode_strictly() {
        assert_eq!(decode("a+b%2Fc").unwrap(), "a b/c");
        assert_eq!(decode("%E2%82%AC").unwrap(), "€");
        for bad in ["%00", "%0a", "%zz", "%+1", "%4", "%FF", "%C3"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn integers_saturate_and_refuse_what_is_not_one() {
        assert_eq!(saturating("42").unwrap(), 42);
        assert_eq!(saturating("-3").unwrap(), -3);
        assert_eq!(saturating("99999999999999999999999").unwrap(), i64::MAX);
        assert_eq!(saturating("-99999999999999999999999").unwrap(), i64::MIN);
        assert_eq!(saturating("15.0").unwrap(), 15);
        assert_eq!(saturating("1e3").unwrap(), 1_000);
        assert_eq!(saturating("-2.5e40").unwrap(), i64::MIN);
        for bad in ["", "-", "1.5", "ten", " 1", "inf", "NaN", "1e400"] {
            assert!(saturating(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nul_and_null_are_named() {
        let e = check_member("scopes", &mut serde_json::json!(["a", "b\u{0}"])).unwrap_err();
        assert!(e.to_string().contains("scopes[1]"), "{e}");
        let e = check_member("limits", &mut serde_json::json!({"token": null})).unwrap_err();
        assert!(
            e.to_string().contains("limits.token: must not be null"),
            "{e}"
        );
    }

    #[test]
    fn whole_floats_are_integers_and_repeats_are_refused() {
        let mut v = serde_json::json!({"n": 15340.0, "m": 1.5, "k": -3.0});
        check_member("body", &mut v).unwrap();
        assert_eq!(v, serde_json::json!({"n": 15340, "m": 1.5, "k": -3}));
        assert!(serde_json::from_str::<Distinct>(r#"{"a": {"b": 1, "b": 2}}"#).is_err());
        assert!(serde_json::from_str::<Distinct>(r#"{"a": [{"b": 1}, {"b": 2}]}"#).is_ok());
    }
}
