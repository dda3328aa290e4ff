//! Token issuance, introspection and revocation: loads what a decision needs from memory, asks core, signs.
//! Issuing a client_credentials token reads only memory and writes nothing to the database.

use std::sync::Arc;
use std::time::Duration;

use keyward_core::client::{AuthMethod, GrantType};
use keyward_core::form::Params;
use keyward_core::grant::{PartnerCheck, TokenResponse, client_credentials};
use keyward_core::introspect::{Introspection, may_revoke, may_see};
use keyward_core::jwt::{AccessTokenClaims, Confirmation};
use keyward_core::{ErrorCode, OAuthError};
use serde_json::json;

use super::assertions::AssertionRefusal;
use super::delegated::DelegatedError;
use super::delegated::{dpop_required, token_type};
use super::dpop::{DpopProofs, ProofHeader, ProofRefusal};
use super::{Assertions, Delegated};
use crate::clock::Clock;
use crate::config::Endpoint;
use crate::crypto::{MasterKeys, token_id, token_instance};
use crate::feed::FeedHealth;
use crate::keys::KeyRing;
use crate::limits::Refusal;
use crate::limits::{Limits, Source};
use crate::metrics::{Lookup, Metrics};
use crate::refresh::REFRESH_PREFIX;
use crate::registry::{CachedClient, Credentials, Registry};
use crate::store::{Store, StoreError};
use crate::usage::Usage;
use keyward_client::dpop::CheckedProof;

/// What the issuer answers instead of a token, an introspection or a revocation.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// An RFC 6749 §5.2 error (`invalid_client` among them: the edge adds its challenge).
    #[error("{0}")]
    OAuth(OAuthError),
    /// RFC 6750 §3.1: the access token presented is not one Keyward stands behind.
    #[error("{0}")]
    InvalidToken(OAuthError),
    /// A rate limit, quota or failed-authentication limit refused the request.
    #[error("{}", .0.message())]
    Limited(Refusal),
    /// The database has been unreachable for longer than `stale_while_unreachable`.
    #[error("the database is unavailable")]
    Stale,
    /// No signing key is active at this node's time.
    #[error("no signing key is active")]
    NoSigningKey,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl IssueError {
    /// A signing failure: no key active yet, or anything else.
    pub(crate) fn signing(e: anyhow::Error) -> Self {
        DelegatedError::signing(e).into()
    }
}

impl From<DelegatedError> for IssueError {
    fn from(e: DelegatedError) -> Self {
        match e {
            DelegatedError::OAuth(e) => Self::OAuth(e),
            DelegatedError::NoSigningKey => Self::NoSigningKey,
            DelegatedError::Store(e) => Self::Store(e),
            DelegatedError::Internal(e) => Self::Internal(e),
        }
    }
}

/// Issues, introspects and revokes tokens: the token endpoint's service, over what is in memory.
pub struct Issuer {
    /// The data layer (revocations, the denylist, clients not yet in memory).
    pub store: Store,
    /// Clients and resources in memory.
    pub registry: Arc<Registry>,
    /// Signing keys.
    pub keys: Arc<KeyRing>,
    /// Pepper (secret digests).
    pub master: Arc<MasterKeys>,
    /// Rate limits, quotas and failed-authentication limits.
    pub limits: Arc<Limits>,
    /// Tokens issued per key per hour, not yet flushed.
    pub usage: Arc<Usage>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Where time comes from.
    pub clock: Clock,
    /// Whether the database answered the change feed lately.
    pub feed: Arc<FeedHealth>,
    /// The issuer URL (`iss`).
    pub issuer: String,
    /// How long tokens keep being issued from memory while the database is unreachable.
    pub stale_while_unreachable: Duration,
    /// The delegated grants (authorization_code, refresh_token).
    pub delegated: Arc<Delegated>,
    /// Client assertions (`private_key_jwt`, federation).
    pub assertions: Arc<Assertions>,
    /// DPoP proofs of token requests.
    pub dpop: Arc<DpopProofs>,
}

impl Issuer {
    /// Authenticates a client under the limits of `endpoint`: the source's
    /// request rate first, then whether the source may try this client id at all (failed-authentication
    /// limits), then the secret (a failure counts against both), then the client's own request rate.
    pub async fn authenticate(
        &self,
        creds: Option<&Credentials>,
        source: &Source,
        endpoint: Endpoint,
    ) -> Result<Arc<CachedClient>, IssueError> {
        let now_us = self.clock.now_micros();
        self.limits
            .address(&self.store, endpoint, source, now_us)
            .await
            .map_err(IssueError::Limited)?;
        let creds = creds.ok_or(IssueError::OAuth(OAuthError::invalid_client()))?;
        // RFC 7662 §2.1: introspection needs a client that proves who it is; a public client's id alone does not
        // (it may revoke its own tokens with it, RFC 7009 §2.1, and use its grants).
        if endpoint == Endpoint::Introspect && creds.method == AuthMethod::None {
            return Err(IssueError::OAuth(OAuthError::invalid_client()));
        }
        self.limits
            .may_try(&creds.client_id, source, now_us)
            .map_err(IssueError::Limited)?;
        // While the database is unreachable the clients in memory keep authenticating, but only for
        // stale_while_unreachable: past it a disabled client or a rotated secret may be missed for too long.
        if self.feed.is_stale(self.stale_while_unreachable) {
            return Err(IssueError::Stale);
        }
        let client = self.registry.client(&self.store, &creds.client_id).await?;
        let lookup = match (&client, self.registry.is_loaded()) {
            (None, _) => Lookup::Unknown,
            (Some(_), true) => Lookup::Memory,
            (Some(_), false) => Lookup::Database,
        };
        self.metrics.client_lookups[lookup as usize].increment(1);
        let outcome = if creds.method == AuthMethod::PrivateKeyJwt {
            self.by_assertion(creds, client).await?
        } else {
            self.registry
                .authenticate(&self.master, creds, client, self.clock.now())
        };
        match outcome {
            Ok(client) => {
                self.limits
                    .client(&self.store, endpoint, &client, source.ip, now_us)
                    .await
                    .map_err(IssueError::Limited)?;
                Ok(client)
            }
            Err(e) => {
                // An unknown id and a wrong secret take this same path, so neither the answer nor its timing
                // tells them apart.
                self.limits
                    .failed(&self.store, &creds.client_id, source, now_us)
                    .await;
                Err(IssueError::OAuth(e))
            }
        }
    }

    /// RFC 7521 §4.2: authenticates by a JWT assertion. Every refusal is the same `invalid_client` (its reason goes
    /// to the log); only a store failure is an error of its own.
    async fn by_assertion(
        &self,
        creds: &Credentials,
        client: Option<Arc<CachedClient>>,
    ) -> Result<Result<Arc<CachedClient>, OAuthError>, IssueError> {
        let Some(client) = client.filter(|c| c.accepts(AuthMethod::PrivateKeyJwt)) else {
            return Ok(Err(OAuthError::invalid_client()));
        };
        match self
            .assertions
            .authenticate(&client, &creds.proof, self.clock.now())
            .await
        {
            Ok(()) => Ok(Ok(client)),
            Err(AssertionRefusal::Store(e)) => Err(e.into()),
            Err(why) => {
                tracing::info!(client_id = %creds.client_id, reason = %why, "client assertion refused");
                Ok(Err(OAuthError::invalid_client()))
            }
        }
    }

    /// RFC 9449 §4.3: the DPoP proof of a token request to `htu` (the URL it was sent to), checked before the
    /// client is authenticated and spent by [`Issuer::token`].
    pub fn check_proof(
        &self,
        header: ProofHeader<'_>,
        htu: &str,
    ) -> Result<Option<CheckedProof>, IssueError> {
        self.dpop
            .check(header, htu, self.clock.now())
            .map_err(IssueError::OAuth)
    }

    /// `POST /oauth2/token` (RFC 6749 §3.2), with the request's checked DPoP proof (RFC 9449 §5): its `jti` is
    /// spent, and the token bound to its key.
    pub async fn token(
        &self,
        client: &CachedClient,
        params: &Params,
        partner: PartnerCheck<'_>,
        proof: Option<CheckedProof>,
    ) -> Result<TokenResponse, IssueError> {
        let grant_type = params.required("grant_type").map_err(IssueError::OAuth)?;
        if let Some(p) = &proof {
            match self.dpop.spend(p, self.clock.now()).await {
                Ok(()) => {}
                Err(ProofRefusal::OAuth(e)) => return Err(IssueError::OAuth(e)),
                Err(ProofRefusal::Store(e)) => return Err(e.into()),
            }
        }
        let jkt = proof.map(|p| p.jkt);
        if jkt.is_none() && client.dpop_bound {
            // RFC 9449 §5.2: dpop_bound_access_tokens.
            return Err(IssueError::OAuth(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "this client's access tokens must be DPoP-bound: send a DPoP proof",
            )));
        }
        let jkt = jkt.as_deref();
        let now_us = self.clock.now_micros();
        let spent = self
            .limits
            .quota(&self.store, client, now_us)
            .await
            .map_err(IssueError::Limited)?;
        let grant = grant_type.parse::<GrantType>();
        let issued = match grant {
            Ok(GrantType::ClientCredentials) => self.client_credentials(client, params, jkt),
            Ok(GrantType::AuthorizationCode) => self
                .delegated
                .authorization_code(client, params, partner, jkt)
                .await
                .map_err(Into::into),
            Ok(GrantType::RefreshToken) => self
                .delegated
                .refresh_token(client, params, partner, jkt)
                .await
                .map_err(Into::into),
            Err(_) => Err(IssueError::OAuth(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "Keyward offers client_credentials, authorization_code and refresh_token",
            ))),
        };
        match (&issued, grant) {
            (Ok(_), Ok(grant)) => {
                self.metrics.token_issued(client, grant);
                if client.is_owned() {
                    // An account's key: counted in memory for its usage chart; housekeeping adds the counts to
                    // the database.
                    self.usage
                        .record(&client.client.id, client.instance, self.clock.now());
                }
            }
            // Only tokens issued count against a quota.
            _ => self.limits.give_back_all(&spent, now_us),
        }
        issued
    }

    /// RFC 6749 §4.4: the client_credentials grant.
    fn client_credentials(
        &self,
        client: &CachedClient,
        params: &Params,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, IssueError> {
        let request = client_credentials::Request {
            scope: params.single("scope").map_err(IssueError::OAuth)?,
            audience: params.single("audience").map_err(IssueError::OAuth)?,
            resource: params.single("resource").map_err(IssueError::OAuth)?,
        };
        let resources = self.registry.resources();
        let grant = client_credentials::check(&client.client, &request, |id| resources.get(id))
            .map_err(IssueError::OAuth)?;
        if jkt.is_none() && grant.require_dpop {
            return Err(IssueError::OAuth(dpop_required()));
        }
        let now = self.clock.now();
        let scope = (!grant.scope.is_empty()).then(|| grant.scope.to_string());
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: client.client.id.clone(),
            aud: grant.audience,
            exp: now + grant.ttl,
            iat: now,
            jti: token_id(client.instance),
            client_id: client.client.id.clone(),
            scope: scope.clone(),
            nbf: None,
            cnf: jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
        };
        let access_token = self
            .keys
            .sign(grant.alg, &claims, now)
            .map_err(IssueError::signing)?;
        if self.feed.is_down() {
            self.metrics.stale_tokens.increment(1);
        }
        Ok(TokenResponse {
            access_token,
            token_type: token_type(jkt),
            expires_in: grant.ttl,
            refresh_token: None,
            scope,
        })
    }

    /// Verifies a token we issued: signature, claims, the client's state, and the denylist. A token of a client
    /// that has been disabled or deleted is refused (re-enabling the client restores its unexpired tokens), and so
    /// is a token of a deleted client's instance when a client with the same id exists again.
    pub async fn verify_token(&self, token: &str) -> Result<AccessTokenClaims, IssueError> {
        let claims = self
            .keys
            .verify(token, &self.issuer, self.clock.now())
            .map_err(IssueError::InvalidToken)?;
        let issued_to = |c: &CachedClient| match token_instance(&claims.jti) {
            Some(instance) => instance == c.instance,
            // Issued before token ids named the instance: not before this client existed.
            None => claims.iat >= c.created_at,
        };
        if !self
            .registry
            .client(&self.store, &claims.client_id)
            .await?
            .is_some_and(|c| c.client.enabled && issued_to(&c))
        {
            return Err(IssueError::InvalidToken(OAuthError::new(
                ErrorCode::InvalidToken,
                "the client is disabled or deleted",
            )));
        }
        if self.store.is_revoked(&claims.jti).await? {
            return Err(IssueError::InvalidToken(OAuthError::new(
                ErrorCode::InvalidToken,
                "token revoked",
            )));
        }
        Ok(claims)
    }

    /// `POST /oauth2/introspect` (RFC 7662 §2): access tokens (JWTs) and refresh tokens.
    pub async fn introspect(
        &self,
        caller: &CachedClient,
        params: &Params,
    ) -> Result<Introspection, IssueError> {
        let token = params.required("token").map_err(IssueError::OAuth)?;
        // The hint is optional and only an optimisation (RFC 7662 §2.1): the token's own form says what it is.
        params
            .single("token_type_hint")
            .map_err(IssueError::OAuth)?;
        if token.starts_with(REFRESH_PREFIX) {
            return Ok(self.delegated.introspect_refresh(caller, token).await?);
        }
        match self.verify_token(token).await {
            Ok(claims) if may_see(&caller.client, &claims) => Ok(Introspection::active(claims)),
            Ok(_) | Err(IssueError::InvalidToken(_)) => Ok(Introspection::inactive()),
            Err(e) => Err(e),
        }
    }

    /// `POST /oauth2/revoke` (RFC 7009 §2.1). An invalid or unknown token is a success (§2.2).
    pub async fn revoke(&self, caller: &CachedClient, params: &Params) -> Result<(), IssueError> {
        let token = params.required("token").map_err(IssueError::OAuth)?;
        params
            .single("token_type_hint")
            .map_err(IssueError::OAuth)?;
        if token.starts_with(REFRESH_PREFIX) {
            return Ok(self.delegated.revoke_refresh(caller, token).await?);
        }
        let claims = match self.verify_token(token).await {
            Ok(c) => c,
            Err(IssueError::InvalidToken(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !may_revoke(&caller.client, &claims) {
            return Err(IssueError::OAuth(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "the token was not issued to this client",
            )));
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        tx.revoke_jti(&claims.jti, claims.exp + keyward_core::jwt::LEEWAY_SECONDS)
            .await?;
        tx.audit(
            &crate::store::NewAudit {
                actor: &format!("client:{}", caller.client.id),
                source: "oauth2/revoke",
                action: "token.revoke",
                target: &claims.jti,
                detail: json!({"client_id": claims.client_id, "aud": claims.aud}).to_string(),
            },
            now,
        )
        .await?;
        tx.change("revoked", &claims.jti, now).await?;
        tx.commit().await?;
        Ok(())
    }
}
