//! Unit tests of the DPoP proof checks: a good proof, then each forged or wrong value on its own.

use super::*;
use serde_json::{Map, json};

const NOW: i64 = 1_800_000_000;
const URL: &str = "https://api.example.com/orders/1";
const ATH: &str = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo";

use crate::jwt::testing::jws;

fn ec_key() -> Value {
    json!({"kty": "EC", "crv": "P-256", "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
           "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"})
}

fn header() -> Value {
    json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": ec_key()})
}

fn claims() -> Value {
    json!({"jti": "-BwC3ESc6acc2lTc", "htm": "GET", "htu": URL, "iat": NOW, "ath": ATH})
}

fn with(v: Value, change: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut v = v;
    if let Value::Object(m) = &mut v {
        change(m);
    }
    v
}

fn expected() -> Expected<'static> {
    Expected {
        method: "GET",
        url: URL,
        ath: Some(ATH),
        nonces: &[],
    }
}

fn run(header: Value, claims: Value) -> Result<(), DpopError> {
    check(&jws(header, claims), &expected(), NOW).map(|_| ())
}

#[test]
fn a_good_proof_passes_with_what_the_caller_needs() {
    let proof = jws(header(), claims());
    let u = check(&proof, &expected(), NOW).unwrap();
    assert_eq!(u.alg, AssertionAlg::ES256);
    assert_eq!(u.jwk, ec_key());
    assert_eq!((u.jti.as_str(), u.iat), ("-BwC3ESc6acc2lTc", NOW));
    assert_eq!(u.signature, b"sig");
    assert_eq!(Some(u.signing_input), proof.rsplit_once('.').map(|p| p.0));
    assert_eq!(u.spend_until(), NOW + IAT_MAX_AGE + LEEWAY_SECONDS);
    // The edges of the iat window, and a query or fragment on either side.
    for iat in [NOW - IAT_MAX_AGE, NOW + IAT_MAX_AHEAD] {
        assert!(
            run(
                header(),
                with(claims(), |m| drop(m.insert("iat".into(), json!(iat))))
            )
            .is_ok()
        );
    }
    let e = Expected {
        url: "https://API.example.com:443/orders/1?x=1#f",
        ..expected()
    };
    let p = jws(
        header(),
        with(claims(), |m| {
            drop(m.insert("htu".into(), json!(format!("{URL}?y=2"))))
        }),
    );
    assert!(check(&p, &e, NOW).is_ok());
    // No access token: ath is not asked for. Unknown claims and header members are ignored.
    let e = Expected {
        ath: None,
        ..expected()
    };
    let p = jws(header(), with(claims(), |m| drop(m.remove("ath"))));
    assert!(check(&p, &e, NOW).is_ok());
    let h = with(header(), |m| drop(m.insert("kid".into(), json!("k"))));
    assert!(
        run(
            h,
            with(claims(), |m| drop(m.insert("extra".into(), json!(1))))
        )
        .is_ok()
    );
}

#[test]
fn forged_or_wrong_headers_are_refused() {
    use DpopError as E;
    let set = |name: &str, value: Value| with(header(), |m| drop(m.insert(name.into(), value)));
    for typ in [
        json!("JWT"),
        json!("at+jwt"),
        json!("DPoP+JWT"),
        json!("application/dpop+jwt"),
        json!(1),
    ] {
        let r = run(set("typ", typ.clone()), claims());
        assert!(matches!(r, Err(E::Type | E::Malformed(_))), "{typ}: {r:?}");
    }
    assert_eq!(
        run(with(header(), |m| drop(m.remove("typ"))), claims()),
        Err(E::Type)
    );
    for alg in ["none", "HS256", "ES384", "RS512", ""] {
        assert_eq!(
            run(set("alg", json!(alg)), claims()),
            Err(E::Algorithm(alg.into())),
            "{alg}"
        );
    }
    assert_eq!(
        run(set("crit", json!(["exp"])), claims()),
        Err(E::Header("crit"))
    );
    assert_eq!(
        run(with(header(), |m| drop(m.remove("jwk"))), claims()),
        Err(E::Key("missing"))
    );
    for private in PRIVATE_MEMBERS {
        let jwk = with(ec_key(), |m| drop(m.insert(private.into(), json!("AAAA"))));
        assert!(
            matches!(run(set("jwk", jwk), claims()), Err(E::Key(_))),
            "{private}"
        );
    }
    // The key's type must fit alg: an EC key with RS256 or EdDSA, a P-384 key, a symmetric key.
    for (alg, jwk) in [
        ("RS256", ec_key()),
        ("EdDSA", ec_key()),
        (
            "ES256",
            with(ec_key(), |m| drop(m.insert("crv".into(), json!("P-384")))),
        ),
        ("ES256", json!({"kty": "oct"})),
        ("ES256", json!("a key")),
    ] {
        let h = with(set("jwk", jwk.clone()), |m| {
            drop(m.insert("alg".into(), json!(alg)))
        });
        assert!(matches!(run(h, claims()), Err(E::Key(_))), "{alg} {jwk}");
    }
    assert_eq!(
        check("a.b", &expected(), NOW).unwrap_err(),
        E::Malformed("not a compact JWS")
    );
}

#[test]
fn forged_or_wrong_claims_are_refused() {
    use DpopError as E;
    let cases: [(&str, Value, E); 11] = [
        ("htm", json!("POST"), E::Method),
        ("htm", json!("get"), E::Method),
        ("htu", json!("https://api.example.com/orders/2"), E::Url),
        ("htu", json!("http://api.example.com/orders/1"), E::Url),
        (
            "htu",
            json!("https://api.example.com:8443/orders/1"),
            E::Url,
        ),
        ("htu", json!("https://evil.example/orders/1"), E::Url),
        ("htu", json!("/orders/1"), E::Url),
        ("iat", json!(NOW - IAT_MAX_AGE - 1), E::TooOld),
        ("iat", json!(NOW + IAT_MAX_AHEAD + 1), E::Ahead),
        (
            "ath",
            json!("x"),
            E::AccessTokenHash("does not match the access token"),
        ),
        ("jti", json!(""), E::Jti),
    ];
    for (claim, value, error) in cases {
        let c = with(claims(), |m| drop(m.insert(claim.into(), value.clone())));
        assert_eq!(run(header(), c), Err(error), "{claim} = {value}");
    }
    let long = with(claims(), |m| {
        drop(m.insert("jti".into(), json!("j".repeat(MAX_JTI + 1))))
    });
    assert_eq!(run(header(), long), Err(E::Jti));
    let no_ath = with(claims(), |m| drop(m.remove("ath")));
    assert_eq!(run(header(), no_ath), Err(E::AccessTokenHash("is missing")));
    for claim in ["jti", "htm", "htu", "iat"] {
        assert_eq!(
            run(header(), with(claims(), |m| drop(m.remove(claim)))),
            Err(E::Claims),
            "{claim}"
        );
    }
    let string_iat = with(claims(), |m| {
        drop(m.insert("iat".into(), json!("1800000000")))
    });
    assert_eq!(run(header(), string_iat), Err(E::Claims));
}

#[test]
fn nonces_when_the_server_asks_for_them() {
    let nonces = ["n-1", "n-2"];
    let e = Expected {
        nonces: &nonces,
        ..expected()
    };
    let proof = |nonce: Option<&str>| {
        jws(
            header(),
            with(claims(), |m| {
                if let Some(n) = nonce {
                    m.insert("nonce".into(), json!(n));
                }
            }),
        )
    };
    assert!(check(&proof(Some("n-2")), &e, NOW).is_ok());
    assert_eq!(
        check(&proof(Some("n-3")), &e, NOW).unwrap_err(),
        DpopError::Nonce
    );
    assert_eq!(check(&proof(None), &e, NOW).unwrap_err(), DpopError::Nonce);
    // Not asked for: a nonce in the proof does no harm.
    assert!(check(&proof(Some("n-3")), &expected(), NOW).is_ok());
}

#[test]
fn urls_compare_after_normalisation() {
    let same = [
        ("https://api.example.com", "https://api.example.com/"),
        ("HTTPS://API.Example.COM:443/a", "https://api.example.com/a"),
        ("http://h:80/a", "http://h/a"),
        ("http://h:8080/a", "http://h:8080/a"),
        ("https://h/a/./b/../c", "https://h/a/c"),
        ("https://h/a/%7euser/%2f", "https://h/a/~user/%2F"),
        ("https://h/a?q=1#f", "https://h/a"),
        ("https://[::1]:443/a", "https://[::1]/a"),
        ("https://[::1]:8443/a", "https://[::1]:8443/a"),
    ];
    for (a, b) in same {
        assert_eq!(normalize_url(a), normalize_url(b), "{a} vs {b}");
        assert!(normalize_url(a).is_some(), "{a}");
    }
    assert_eq!(normalize_url("HTTP://H:80").as_deref(), Some("http://h/"));
    assert_ne!(normalize_url("https://h/A"), normalize_url("https://h/a"));
    assert_ne!(normalize_url("https://h/a"), normalize_url("http://h/a"));
    for bad in [
        "ftp://h/a",
        "https://u@h/a",
        "https:///a",
        "https://h:x/a",
        "/a",
        "https://h/%zz",
        "https://h/é",
    ] {
        assert_eq!(normalize_url(bad), None, "{bad}");
    }
}

#[test]
fn thumbprint_input_is_canonical() {
    // RFC 7638 §3.1's example key: members reordered and extra ones dropped.
    let rsa = json!({"n": "0vx7", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29", "kty": "RSA"});
    assert_eq!(
        thumbprint_input(&rsa).unwrap(),
        r#"{"e":"AQAB","kty":"RSA","n":"0vx7"}"#
    );
    let ec = thumbprint_input(&ec_key()).unwrap();
    assert!(
        ec.starts_with(r#"{"crv":"P-256","kty":"EC","x":"l8tF"#),
        "{ec}"
    );
    let okp = json!({"x": "11qY", "crv": "Ed25519", "kty": "OKP"});
    assert_eq!(
        thumbprint_input(&okp).unwrap(),
        r#"{"crv":"Ed25519","kty":"OKP","x":"11qY"}"#
    );
    assert!(thumbprint_input(&json!({"kty": "EC", "crv": "P-256", "x": "a"})).is_err());
    assert!(thumbprint_input(&json!({"kty": "oct", "k": "a"})).is_err());
}
