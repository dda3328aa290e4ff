//! Unit tests of the conversions between client rows and typed registrations.
use keyward_core::client::{AuthMethod, GrantType};
use keyward_core::limit::ClientLimits;
use keyward_core::registration::ClientRegistration;

use super::ClientRow;

fn registration() -> ClientRegistration {
    ClientRegistration {
        name: "Orders".into(),
        grant_types: vec![GrantType::ClientCredentials, GrantType::AuthorizationCode],
        scopes: vec!["read".into(), "write".into()],
        default_resource: Some("https://api".into()),
        resources: vec!["https://api".into()],
        redirect_uris: vec!["https://app.example/cb".into()],
        description: "Ships orders.".into(),
        refresh_token_ttl: Some(86_400),
        limits: ClientLimits {
            tokens_per_hour: Some(10),
            ..ClientLimits::default()
        },
        ..ClientRegistration::new(Some("acct_1".into()))
    }
}

#[test]
fn a_row_holds_its_registration() {
    let r = registration();
    let row = ClientRow::new("c1".into(), &r, 7, 100);
    assert_eq!(row.grant_types, "client_credentials authorization_code");
    assert_eq!(row.auth_methods, "client_secret_basic client_secret_post");
    assert_eq!(row.scopes, "read write");
    assert_eq!(row.limits, r#"{"tokens_per_hour":10}"#);
    assert_eq!(
        (row.instance, row.created_at, row.updated_at),
        (7, 100, 100)
    );
    assert_eq!(row.registration(r.resources.clone()), r);
    let blank = ClientRow::new("c2".into(), &ClientRegistration::new(None), 1, 0);
    assert_eq!(blank.limits, "{}");
    assert_eq!(blank.scopes, "");
}

#[test]
fn a_change_keeps_what_this_version_cannot_read() {
    let mut row = ClientRow::new("c1".into(), &registration(), 7, 100);
    // Written by a newer version: a grant type and a limit this one does not know.
    row.grant_types = "client_credentials device_code authorization_code".into();
    row.limits = r#"{"tokens_per_week":5}"#.into();
    let mut r = row.registration(vec![]);
    assert_eq!(
        r.grant_types,
        [GrantType::ClientCredentials, GrantType::AuthorizationCode]
    );
    assert_eq!(r.limits, ClientLimits::default());
    r.name = "Renamed".into();
    row.set_registration(&r);
    assert_eq!(row.name, "Renamed");
    assert_eq!(
        row.grant_types,
        "client_credentials device_code authorization_code"
    );
    assert_eq!(row.limits, r#"{"tokens_per_week":5}"#);
    // A field that does change is written whole.
    r.auth_methods = vec![AuthMethod::None];
    r.grant_types = vec![GrantType::AuthorizationCode];
    r.limits.tokens_per_day = Some(1);
    row.set_registration(&r);
    assert_eq!(row.auth_methods, "none");
    assert_eq!(row.grant_types, "authorization_code");
    assert_eq!(row.limits, r#"{"tokens_per_day":1}"#);
}
