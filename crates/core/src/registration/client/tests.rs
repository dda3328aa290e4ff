//! Unit tests of the client registration rules: each rule's field and words, valid changes, defaults, order.
use std::collections::HashMap;

use super::*;
use crate::limit::RateSetting;

fn catalogue() -> HashMap<String, Vec<String>> {
    HashMap::from([
        (
            "https://api".to_owned(),
            vec!["read".into(), "write".into()],
        ),
        ("https://other".to_owned(), vec!["other".into()]),
    ])
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// A valid confidential client on `https://api` with the scope `read`.
fn client() -> ClientRegistration {
    create(
        None,
        ClientChange {
            name: Some("Orders".into()),
            resources: Some(strings(&["https://api"])),
            scopes: Some(strings(&["read"])),
            ..ClientChange::default()
        },
        &catalogue(),
    )
    .unwrap()
}

/// A valid public app using authorization_code and refresh_token.
fn app() -> ClientChange {
    ClientChange {
        grant_types: Some(vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
        client_type: Some(ClientType::Public),
        redirect_uris: Some(strings(&["https://app.example/cb"])),
        ..ClientChange::default()
    }
}

/// The message `change` applied to [`client`] is refused with.
fn refusal(change: ClientChange) -> String {
    let e = apply(client(), change, &catalogue()).unwrap_err();
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("{}: ", e.field())),
        "{message}"
    );
    message
}

#[test]
fn a_new_client_gets_the_defaults_under_its_fields() {
    let c = client();
    assert_eq!(c.name, "Orders");
    assert!(c.enabled);
    assert_eq!(c.grant_types, [GrantType::ClientCredentials]);
    assert_eq!(c.auth_methods, AuthMethod::ALL);
    assert_eq!(c.client_type(), ClientType::Confidential);
    assert_eq!(c.resources, ["https://api"]);
    assert_eq!(c.scopes, ["read"]);
    assert_eq!(c.limits, ClientLimits::default());
    assert_eq!(c.owner_account, None);
    let owned = create(
        Some("acct_1".into()),
        ClientChange {
            name: Some("key".into()),
            ..ClientChange::default()
        },
        &catalogue(),
    )
    .unwrap();
    assert_eq!(owned.owner_account.as_deref(), Some("acct_1"));
}

#[test]
fn a_new_client_needs_a_name() {
    let e = create(None, ClientChange::default(), &catalogue()).unwrap_err();
    assert_eq!(e, RegistrationError::invalid("name", "required"));
    assert_eq!(e.to_string(), "name: required");
}

#[test]
fn a_valid_change_applies_every_field() {
    let limits = ClientLimits {
        tokens_per_hour: Some(1_000),
        token: Some(RateSetting::Off),
        ..ClientLimits::default()
    };
    let changed = apply(
        client(),
        ClientChange {
            name: Some("Orders (UAT)".into()),
            enabled: Some(false),
            grant_types: Some(vec![
                GrantType::ClientCredentials,
                GrantType::AuthorizationCode,
                GrantType::RefreshToken,
            ]),
            auth_methods: Some(vec![AuthMethod::ClientSecretPost]),
            resources: Some(strings(&["https://other", "https://api", "https://api"])),
            scopes: Some(strings(&["write", "other"])),
            default_resource: Some(Some("https://api".into())),
            serves_resources: Some(strings(&["https://other"])),
            client_type: Some(ClientType::Confidential),
            redirect_uris: Some(strings(&["https://app.example/cb", "http://127.0.0.1/cb"])),
            description: Some("Ships orders.".into()),
            refresh_token_ttl: Some(86_400),
            limits: Some(limits),
            ..ClientChange::default()
        },
        &catalogue(),
    )
    .unwrap();
    assert_eq!(
        changed,
        ClientRegistration {
            name: "Orders (UAT)".into(),
            enabled: false,
            grant_types: vec![
                GrantType::ClientCredentials,
                GrantType::AuthorizationCode,
                GrantType::RefreshToken,
            ],
            auth_methods: vec![AuthMethod::ClientSecretPost],
            resources: strings(&["https://api", "https://other"]),
            scopes: strings(&["write", "other"]),
            default_resource: Some("https://api".into()),
            serves_resources: strings(&["https://other"]),
            redirect_uris: strings(&["https://app.example/cb", "http://127.0.0.1/cb"]),
            description: "Ships orders.".into(),
            refresh_token_ttl: Some(86_400),
            limits,
            owner_account: None,
            keys: Default::default(),
        }
    );
    // An empty change changes nothing.
    assert_eq!(
        apply(changed.clone(), ClientChange::default(), &catalogue()),
        Ok(changed)
    );
}

#[test]
fn clearing_fields() {
    let c = apply(
        client(),
        ClientChange {
            default_resource: Some(Some("https://api".into())),
            description: Some("text".into()),
            refresh_token_ttl: Some(3_600),
            ..ClientChange::default()
        },
        &catalogue(),
    )
    .unwrap();
    let cleared = apply(
        c,
        ClientChange {
            default_resource: Some(None),
            description: Some(String::new()),
            refresh_token_ttl: Some(0),
            limits: Some(ClientLimits::default()),
            ..ClientChange::default()
        },
        &catalogue(),
    )
    .unwrap();
    assert_eq!(cleared, client());
}

#[test]
fn names_follow_the_name_rule() {
    for bad in ["", " ", "a\u{0}b", &"n".repeat(201)] {
        assert_eq!(
            refusal(ClientChange {
                name: Some(bad.into()),
                ..ClientChange::default()
            }),
            "name: must be 1 to 200 characters with no control characters"
        );
    }
}

#[test]
fn grant_types_and_auth_methods_are_read_from_their_names() {
    assert_eq!(
        parse_grant_types(&["client_credentials", "refresh_token"]),
        Ok(vec![GrantType::ClientCredentials, GrantType::RefreshToken])
    );
    assert_eq!(parse_grant_types::<&str>(&[]), Ok(vec![]));
    assert_eq!(
        parse_grant_types(&["client_credentials", "password"])
            .unwrap_err()
            .to_string(),
        "grant_types: unsupported grant type \"password\": Keyward offers client_credentials, \
         authorization_code and refresh_token"
    );
    assert_eq!(parse_auth_methods(&["none"]), Ok(vec![AuthMethod::None]));
    assert_eq!(
        parse_auth_methods(&["private_key_jwt"]),
        Ok(vec![AuthMethod::PrivateKeyJwt])
    );
    assert_eq!(
        parse_auth_methods(&["tls_client_auth"])
            .unwrap_err()
            .to_string(),
        "auth_methods: unknown auth method \"tls_client_auth\": use client_secret_basic, client_secret_post, \
         private_key_jwt, or none (public clients)"
    );
    assert_eq!("public".parse::<ClientType>(), Ok(ClientType::Public));
    assert_eq!(
        "confidential".parse::<ClientType>(),
        Ok(ClientType::Confidential)
    );
    assert_eq!(
        "private".parse::<ClientType>().unwrap_err().to_string(),
        "client_type: must be confidential or public"
    );
    assert_eq!(ClientType::Public.to_string(), "public");
}

#[test]
fn chosen_ids() {
    assert_eq!(check_id("orders-uat"), Ok(()));
    assert_eq!(
        check_id("").unwrap_err().to_string(),
        "client_id: client_id must be 1 to 255 characters"
    );
    assert_eq!(
        check_id("acct_1").unwrap_err().to_string(),
        "client_id: client_id must not start with \"acct_\", reserved for accounts"
    );
}

#[test]
fn at_least_one_auth_method() {
    assert_eq!(
        refusal(ClientChange {
            auth_methods: Some(vec![]),
            ..ClientChange::default()
        }),
        "auth_methods: at least one is needed"
    );
}

#[test]
fn resources_exist_and_are_sorted() {
    assert_eq!(
        refusal(ClientChange {
            resources: Some(strings(&["https://api", "https://gone"])),
            ..ClientChange::default()
        }),
        "resources: no resource has the identifier \"https://gone\""
    );
    // The current resources are checked too: one deleted since is refused on the next change.
    let mut c = client();
    c.resources.push("https://gone".into());
    assert_eq!(
        apply(c, ClientChange::default(), &catalogue())
            .unwrap_err()
            .to_string(),
        "resources: no resource has the identifier \"https://gone\""
    );
}

#[test]
fn scopes_are_tokens_offered_by_the_clients_resources() {
    assert_eq!(
        refusal(ClientChange {
            scopes: Some(strings(&["read", "has space"])),
            ..ClientChange::default()
        }),
        "scopes: \"has space\" is not a valid scope token"
    );
    assert_eq!(
        refusal(ClientChange {
            scopes: Some(strings(&["other"])),
            ..ClientChange::default()
        }),
        "scopes: \"other\" is not offered by any of the client's resources"
    );
    // Taking a resource away takes its scopes' offer with it.
    assert_eq!(
        refusal(ClientChange {
            resources: Some(strings(&["https://other"])),
            ..ClientChange::default()
        }),
        "scopes: \"read\" is not offered by any of the client's resources"
    );
}

#[test]
fn the_default_resource_is_one_of_the_clients() {
    assert_eq!(
        refusal(ClientChange {
            default_resource: Some(Some("https://other".into())),
            ..ClientChange::default()
        }),
        "default_resource: must be one of the client's resources"
    );
}

#[test]
fn served_resources_exist() {
    assert_eq!(
        refusal(ClientChange {
            serves_resources: Some(strings(&["https://gone"])),
            ..ClientChange::default()
        }),
        "serves_resources: no resource has the identifier \"https://gone\""
    );
}

#[test]
fn client_types() {
    let public = apply(client(), app(), &catalogue()).unwrap();
    assert!(public.is_public());
    assert_eq!(public.auth_methods, [AuthMethod::None]);
    assert_eq!(public.client_type(), ClientType::Public);
    // Confidential again: both secret methods come back.
    let confidential = apply(
        public,
        ClientChange {
            client_type: Some(ClientType::Confidential),
            ..ClientChange::default()
        },
        &catalogue(),
    )
    .unwrap();
    assert_eq!(confidential.auth_methods, AuthMethod::ALL);
    // Confidential on a confidential client keeps its methods.
    let post_only = apply(
        client(),
        ClientChange {
            auth_methods: Some(vec![AuthMethod::ClientSecretPost]),
            client_type: Some(ClientType::Confidential),
            ..ClientChange::default()
        },
        &catalogue(),
    )
    .unwrap();
    assert_eq!(post_only.auth_methods, [AuthMethod::ClientSecretPost]);
}

#[test]
fn none_stands_alone() {
    assert_eq!(
        refusal(ClientChange {
            auth_methods: Some(vec![AuthMethod::None, AuthMethod::ClientSecretBasic]),
            ..ClientChange::default()
        }),
        "auth_methods: none (a public client) cannot be combined with secret methods"
    );
    assert_eq!(
        refusal(ClientChange {
            auth_methods: Some(vec![AuthMethod::None, AuthMethod::None]),
            ..ClientChange::default()
        }),
        "auth_methods: none (a public client) cannot be combined with secret methods"
    );
}

#[test]
fn a_public_client_cannot_use_client_credentials() {
    assert_eq!(
        refusal(ClientChange {
            client_type: Some(ClientType::Public),
            ..ClientChange::default()
        }),
        "grant_types: a public client cannot use client_credentials (it holds no secret)"
    );
    assert_eq!(
        refusal(ClientChange {
            auth_methods: Some(vec![AuthMethod::None]),
            ..ClientChange::default()
        }),
        "grant_types: a public client cannot use client_credentials (it holds no secret)"
    );
}

#[test]
fn redirect_uris() {
    let many: Vec<String> = (0..=MAX_REDIRECT_URIS)
        .map(|i| format!("https://app.example/cb{i}"))
        .collect();
    let twenty = ClientChange {
        redirect_uris: Some(many[..MAX_REDIRECT_URIS].to_vec()),
        ..app()
    };
    assert_eq!(
        apply(client(), twenty, &catalogue()).unwrap().redirect_uris,
        many[..MAX_REDIRECT_URIS]
    );
    assert_eq!(
        refusal(ClientChange {
            redirect_uris: Some(many),
            ..app()
        }),
        "redirect_uris: at most 20"
    );
    // Each is checked as redirect::check_registration checks it, in its words.
    for bad in [
        "http://app.example/cb",
        "https://app.example/cb#f",
        "",
        "javascript:alert(1)",
    ] {
        let why = crate::redirect::check_registration(bad).unwrap_err();
        assert_eq!(
            refusal(ClientChange {
                redirect_uris: Some(strings(&["https://app.example/cb", bad])),
                ..app()
            }),
            format!("redirect_uris: {why}")
        );
    }
    // Registered without authorization_code too (kept for a later change of grant types).
    let kept = apply(
        client(),
        ClientChange {
            redirect_uris: Some(strings(&["https://app.example/cb"])),
            ..ClientChange::default()
        },
        &catalogue(),
    )
    .unwrap();
    assert_eq!(kept.redirect_uris, ["https://app.example/cb"]);
}

#[test]
fn authorization_code_needs_a_redirect_uri() {
    assert_eq!(
        refusal(ClientChange {
            redirect_uris: None,
            ..app()
        }),
        "redirect_uris: authorization_code needs at least one redirect URI"
    );
    assert_eq!(
        refusal(ClientChange {
            redirect_uris: Some(vec![]),
            ..app()
        }),
        "redirect_uris: authorization_code needs at least one redirect URI"
    );
}

#[test]
fn refresh_token_comes_with_authorization_code() {
    assert_eq!(
        refusal(ClientChange {
            grant_types: Some(vec![GrantType::ClientCredentials, GrantType::RefreshToken]),
            ..ClientChange::default()
        }),
        "grant_types: refresh_token comes with authorization_code"
    );
}

#[test]
fn descriptions() {
    let ok = apply(
        client(),
        ClientChange {
            description: Some("d".repeat(MAX_DESCRIPTION)),
            ..ClientChange::default()
        },
        &catalogue(),
    );
    assert!(ok.is_ok());
    for bad in ["d".repeat(MAX_DESCRIPTION + 1), "line\nbreak".into()] {
        assert_eq!(
            refusal(ClientChange {
                description: Some(bad),
                ..ClientChange::default()
            }),
            "description: at most 1,000 characters with no control characters"
        );
    }
}

#[test]
fn refresh_token_lifetimes() {
    for ok in [MIN_REFRESH_TTL, MAX_REFRESH_TTL] {
        let c = apply(
            client(),
            ClientChange {
                refresh_token_ttl: Some(ok),
                ..ClientChange::default()
            },
            &catalogue(),
        )
        .unwrap();
        assert_eq!(c.refresh_token_ttl, Some(ok));
    }
    for bad in [1, MIN_REFRESH_TTL - 1, MAX_REFRESH_TTL + 1] {
        assert_eq!(
            refusal(ClientChange {
                refresh_token_ttl: Some(bad),
                ..ClientChange::default()
            }),
            "refresh_token_ttl: must be from 60s to 3650d (or 0 for the server default)"
        );
    }
    assert_eq!(
        refusal(ClientChange {
            refresh_token_ttl: Some(-1),
            ..ClientChange::default()
        }),
        "refresh_token_ttl: must not be negative"
    );
}

#[test]
fn the_first_field_in_order_is_named() {
    assert_eq!(
        refusal(ClientChange {
            name: Some(String::new()),
            scopes: Some(strings(&["nope"])),
            description: Some("\n".into()),
            ..ClientChange::default()
        }),
        "name: must be 1 to 200 characters with no control characters"
    );
    assert_eq!(
        refusal(ClientChange {
            redirect_uris: Some(strings(&["http://evil.example/cb"])),
            refresh_token_ttl: Some(1),
            ..ClientChange::default()
        }),
        refusal(ClientChange {
            redirect_uris: Some(strings(&["http://evil.example/cb"])),
            ..ClientChange::default()
        }),
    );
}

#[test]
fn private_key_jwt_needs_keys_and_inline_keys_replace_a_jwks_uri() {
    let keys =
        serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "k1"}]});
    let bare = apply(
        client(),
        ClientChange {
            auth_methods: Some(vec![AuthMethod::PrivateKeyJwt]),
            ..ClientChange::default()
        },
        &catalogue(),
    );
    assert_eq!(bare.unwrap_err().field(), "token_endpoint_auth_method");
    let by_uri = apply(
        client(),
        ClientChange {
            auth_methods: Some(vec![AuthMethod::PrivateKeyJwt]),
            jwks_uri: Some(Some("https://app.example/jwks".into())),
            ..ClientChange::default()
        },
        &catalogue(),
    )
    .unwrap();
    assert_eq!(by_uri.client_type(), ClientType::Confidential);
    // Inline keys given later drop the URI; removing every source while private_key_jwt stays is refused.
    let inline = apply(
        by_uri,
        ClientChange {
            jwks: Some(Some(keys)),
            ..ClientChange::default()
        },
        &catalogue(),
    )
    .unwrap();
    assert!(inline.keys.jwks.is_some() && inline.keys.jwks_uri.is_none());
    let emptied = apply(
        inline,
        ClientChange {
            jwks: Some(None),
            ..ClientChange::default()
        },
        &catalogue(),
    );
    assert_eq!(emptied.unwrap_err().field(), "token_endpoint_auth_method");
}
