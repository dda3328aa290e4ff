//! The client_credentials grant (RFC 6749 §4.4), with audience selection by `audience`, `resource` (RFC 8707) or
//! the `<resource>/.default` scope, and scopes checked against the client and the resource's catalogue.

use super::Grant;
use crate::client::{Client, GrantType};
use crate::error::{ErrorCode, OAuthError};
use crate::resource::Resource;
use crate::scope::{DEFAULT_SUFFIX, ScopeSet};

/// The grant-specific parameters of a client_credentials request (RFC 6749 §4.4.2, RFC 8707 §2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request<'a> {
    /// `scope`, as sent.
    pub scope: Option<&'a str>,
    /// `audience` (the Auth0-style name for the target API).
    pub audience: Option<&'a str>,
    /// `resource` (RFC 8707).
    pub resource: Option<&'a str>,
}

/// RFC 6749 §4.4.2: decides what token an authenticated client gets. `lookup` finds a resource by identifier.
pub fn check<'r>(
    client: &Client,
    request: &Request<'_>,
    lookup: impl Fn(&str) -> Option<&'r Resource>,
) -> Result<Grant, OAuthError> {
    if !client.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client may not use client_credentials",
        ));
    }
    let requested = match request.scope {
        Some(s) => ScopeSet::parse(s)?,
        None => ScopeSet::default(),
    };

    // `.default` names a resource and asks for everything the client may have there; mixing it with named
    // scopes would make the answer ambiguous, so it stands alone.
    let default_target = {
        let mut targets = requested
            .iter()
            .filter_map(|s| s.strip_suffix(DEFAULT_SUFFIX));
        let first = targets.next();
        if first.is_some() && requested.iter().count() > 1 {
            return Err(OAuthError::invalid_scope(
                "a `/.default` scope cannot be combined with other scopes",
            ));
        }
        first
    };

    // A client allowed no resource can get no token, whatever it asks: say so, rather than ask for an audience.
    if client.resources.is_empty() {
        return Err(OAuthError::invalid_target(
            "this client is allowed no resource (API), so it can get no token: the platform's operators must \
             allow it one",
        ));
    }
    let explicit = match (request.audience, request.resource) {
        (Some(a), Some(r)) if a != r => {
            return Err(OAuthError::invalid_request(
                "`audience` and `resource` name different resources",
            ));
        }
        (a, r) => a.or(r),
    };
    if let (Some(e), Some(d)) = (explicit, default_target) {
        if e != d {
            return Err(OAuthError::invalid_scope(
                "the `/.default` scope names another resource than the audience",
            ));
        }
    }
    let target = match explicit
        .or(default_target)
        .or(client.default_resource.as_deref())
    {
        Some(t) => t,
        // With a single allowed resource there is nothing to choose.
        None => match client.resources.as_slice() {
            [only] => only.as_str(),
            _ => {
                return Err(OAuthError::invalid_request(
                    "no audience: send `audience`, `resource` or a `<resource>/.default` scope",
                ));
            }
        },
    };

    let resource = lookup(target)
        .filter(|_| client.resources.iter().any(|r| r == target))
        .ok_or_else(|| {
            // A client that named the resource only through `<resource>/.default` sent no `resource` or
            // `audience`, so the error names the parameter it did send (as Entra ID and Azure AD B2C do).
            if explicit.is_none() && default_target.is_some() {
                OAuthError::invalid_scope(
                    "the scope names a resource that is unknown or not allowed for this client",
                )
            } else {
                OAuthError::invalid_target("the resource is unknown or not allowed for this client")
            }
        })?;

    let allowed = client.scopes.intersection(&resource.scopes);
    let scope = if default_target.is_some() || requested.is_empty() {
        allowed
    } else if requested.is_subset(&allowed) {
        requested
    } else {
        return Err(OAuthError::invalid_scope(
            "a requested scope is unknown or not allowed for this client",
        ));
    };
    Ok(Grant {
        audience: resource.identifier.clone(),
        scope,
        ttl: resource.access_token_ttl,
        alg: resource.signing_alg,
        require_dpop: resource.require_dpop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::AuthMethod;
    use crate::resource::SigningAlg;

    fn resource(identifier: &str, scopes: &str) -> Resource {
        Resource {
            id: format!("res_{identifier}"),
            identifier: identifier.into(),
            name: identifier.into(),
            scopes: ScopeSet::parse(scopes).unwrap(),
            access_token_ttl: 900,
            signing_alg: SigningAlg::ES256,
            scope_details: Default::default(),
            require_dpop: false,
        }
    }

    fn client(resources: &[&str], scopes: &str) -> Client {
        Client {
            id: "c1".into(),
            name: "c1".into(),
            enabled: true,
            grant_types: vec![GrantType::ClientCredentials],
            auth_methods: AuthMethod::ALL.to_vec(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            scopes: ScopeSet::parse(scopes).unwrap(),
            default_resource: None,
            redirect_uris: vec![],
            description: String::new(),
            refresh_token_ttl: None,
            serves_resources: vec![],
        }
    }

    fn run(
        c: &Client,
        scope: Option<&str>,
        audience: Option<&str>,
        res: Option<&str>,
    ) -> Result<Grant, OAuthError> {
        let catalogue = [
            resource("uat", "orders:read orders:write"),
            resource("prod", "orders:read"),
        ];
        check(
            c,
            &Request {
                scope,
                audience,
                resource: res,
            },
            |id| catalogue.iter().find(|r| r.identifier == id),
        )
    }

    #[test]
    fn default_scope_selects_resource_and_all_scopes() {
        let c = client(&["uat", "prod"], "orders:read orders:write");
        let g = run(&c, Some("uat/.default"), None, None).unwrap();
        assert_eq!(
            (g.audience.as_str(), g.scope.to_string().as_str()),
            ("uat", "orders:read orders:write")
        );
        let g = run(&c, Some("prod/.default"), None, None).unwrap();
        assert_eq!(g.scope.to_string(), "orders:read");
    }

    #[test]
    fn resource_not_allowed_is_invalid_target_or_scope() {
        let c = client(&["uat"], "orders:read");
        // Named by scope only: the error names the scope.
        assert_eq!(
            run(&c, Some("prod/.default"), None, None).unwrap_err().code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            run(&c, Some("prod/.default"), Some("prod"), None)
                .unwrap_err()
                .code,
            ErrorCode::InvalidTarget
        );
        assert_eq!(
            run(&c, None, Some("nope"), None).unwrap_err().code,
            ErrorCode::InvalidTarget
        );
    }

    #[test]
    fn scope_beyond_client_is_rejected_not_narrowed() {
        let c = client(&["uat"], "orders:read");
        assert_eq!(
            run(&c, Some("orders:read orders:write"), None, None)
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            run(&c, Some("orders:read"), None, None)
                .unwrap()
                .scope
                .to_string(),
            "orders:read"
        );
    }

    #[test]
    fn audience_selection() {
        let c = client(&["uat", "prod"], "orders:read");
        assert_eq!(
            run(&c, None, None, None).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(run(&c, None, Some("prod"), None).unwrap().audience, "prod");
        assert_eq!(run(&c, None, None, Some("prod")).unwrap().audience, "prod");
        assert_eq!(
            run(&c, None, Some("uat"), Some("prod")).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            run(&c, Some("uat/.default"), Some("prod"), None)
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
        let mut d = c.clone();
        d.default_resource = Some("prod".into());
        assert_eq!(run(&d, None, None, None).unwrap().audience, "prod");
        let single = client(&["uat"], "orders:read");
        assert_eq!(run(&single, None, None, None).unwrap().audience, "uat");
    }

    #[test]
    fn default_cannot_mix() {
        let c = client(&["uat"], "orders:read");
        assert_eq!(
            run(&c, Some("uat/.default orders:read"), None, None)
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn grant_type_must_be_allowed() {
        let mut c = client(&["uat"], "orders:read");
        c.grant_types.clear();
        assert_eq!(
            run(&c, None, None, None).unwrap_err().code,
            ErrorCode::UnauthorizedClient
        );
    }
}
