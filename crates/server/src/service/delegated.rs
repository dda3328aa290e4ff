//! Delegated access at the token endpoint: the authorization_code grant (RFC 6749 §4.1.3, PKCE RFC 7636 §4.6)
//! and the refresh_token grant with rotation (RFC 6749 §6, RFC 9700 §4.14.2); issuing codes after consent; and
//! revoking a grant, which denylists every access token its family issued. Each use of a code or refresh token is
//! one transaction that starts with the conditional `UPDATE` deciding the one winner.

use std::sync::Arc;

use keyward_core::client::GrantType;
use keyward_core::form::Params;
use keyward_core::grant::authorization_code::{
    Authorization, IssuedCode, check_redemption, refresh_scope,
};
use keyward_core::grant::{PartnerCheck, TokenResponse};
use keyward_core::introspect::{Introspection, RefreshDetails, may_see_refresh};
use keyward_core::jwt::{AccessTokenClaims, Confirmation, LEEWAY_SECONDS};
use keyward_core::resource::Resource;
use keyward_core::scope::ScopeSet;
use keyward_core::{ErrorCode, OAuthError};
use serde_json::json;

use super::Actor;
use crate::clock::Clock;
use crate::crypto::{MasterKeys, new_token, random_id, sha256, token_id};
use crate::keys::KeyRing;
use crate::keys::NoActiveKey;
use crate::refresh::{self, Presented};
use crate::registry::{CachedClient, Registry};
use crate::store::{
    Advance, CodeRow, GrantRow, NewAudit, Store, StoreError, Tx, same_instance, split_list,
};

/// What delegated access answers instead of a code, a token or a revocation.
#[derive(Debug, thiserror::Error)]
pub enum DelegatedError {
    /// An RFC 6749 §5.2 error.
    #[error("{0}")]
    OAuth(OAuthError),
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

impl DelegatedError {
    /// A signing failure: no key active yet at this node's time, or anything else.
    pub(crate) fn signing(e: anyhow::Error) -> Self {
        if e.is::<NoActiveKey>() {
            Self::NoSigningKey
        } else {
            Self::Internal(e)
        }
    }
}

impl super::Outcome for DelegatedError {
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// The one answer for a code that cannot be used, whatever the reason, so a client learns nothing about codes it
/// does not hold.
fn unusable_code() -> DelegatedError {
    DelegatedError::OAuth(OAuthError::invalid_grant(
        "the code is invalid, expired, used, or was issued to another client",
    ))
}

/// The same for a refresh token.
fn unusable_refresh() -> DelegatedError {
    DelegatedError::OAuth(OAuthError::invalid_grant(
        "the refresh token is invalid, expired, used, revoked, or was issued to another client",
    ))
}

fn may_use(client: &CachedClient, grant: GrantType) -> Result<(), DelegatedError> {
    if client.client.grant_types.contains(&grant) {
        return Ok(());
    }
    Err(DelegatedError::OAuth(OAuthError::new(
        ErrorCode::UnauthorizedClient,
        format!("the client may not use {grant}"),
    )))
}

/// Delegated access: codes after consent, their redemption, refresh tokens, and revoking grants.
pub struct Delegated {
    /// Codes, grants and their token families.
    pub store: Store,
    /// Clients and resources in memory.
    pub registry: Arc<Registry>,
    /// Signing keys.
    pub keys: Arc<KeyRing>,
    /// Code digests and refresh-token MACs.
    pub master: Arc<MasterKeys>,
    /// Where time comes from.
    pub clock: Clock,
    /// The issuer URL (`iss`).
    pub issuer: String,
    /// Authorization code lifetime, seconds.
    pub code_ttl: i64,
    /// Default absolute lifetime of a grant, seconds.
    pub refresh_token_ttl: i64,
    /// How long a grant may go unused before its refresh token stops working, seconds (`None`: no limit).
    pub refresh_token_idle_ttl: Option<i64>,
}

impl Delegated {
    /// After consent: stores a code for `account_id` and returns it (shown once, in the redirect).
    pub async fn issue_code(
        &self,
        auth: &Authorization,
        account_id: &str,
    ) -> Result<String, DelegatedError> {
        // The code belongs to this instance of the client: one created later with the same id cannot redeem it.
        let client = self
            .registry
            .client(&self.store, &auth.client_id)
            .await?
            .ok_or_else(|| {
                DelegatedError::OAuth(OAuthError::invalid_request(
                    "the client is unknown or disabled",
                ))
            })?;
        let now = self.clock.now();
        let code = new_token("kwc_");
        self.store
            .code_insert(&CodeRow {
                digest: self.master.digest(&code).to_vec(),
                client_id: auth.client_id.clone(),
                account_id: account_id.to_owned(),
                redirect_uri: auth.redirect_uri.clone(),
                resource: auth.audience.clone(),
                scopes: auth.scope.to_string(),
                code_challenge: auth.code_challenge.clone(),
                client_instance: client.instance,
                created_at: now,
                expires_at: now + self.code_ttl,
                used_at: None,
                grant_id: None,
            })
            .await?;
        Ok(code)
    }

    /// RFC 6749 §4.1.3: redeems a code. The code is spent by the first statement, so a failed check spends it
    /// too; a code presented again revokes the grant its first redemption created.
    pub(crate) async fn authorization_code(
        &self,
        client: &CachedClient,
        params: &Params,
        partner: PartnerCheck<'_>,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, DelegatedError> {
        may_use(client, GrantType::AuthorizationCode)?;
        let code = params.required("code").map_err(DelegatedError::OAuth)?;
        let redirect_uri = params
            .single("redirect_uri")
            .map_err(DelegatedError::OAuth)?;
        let verifier = params
            .single("code_verifier")
            .map_err(DelegatedError::OAuth)?;
        let digest = self.master.digest(code);
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let Some(row) = tx.code_consume(&digest, now).await? else {
            // Unknown, or used: a replay. What the first redemption issued is revoked (RFC 6749 §4.1.2).
            if let Some(grant_id) = tx.code_get(&digest).await?.and_then(|c| c.grant_id) {
                self.revoke_grant_in(
                    &mut tx,
                    &grant_id,
                    "code.replayed",
                    &client_actor(client),
                    now,
                )
                .await?;
                tracing::warn!(client_id = %client.client.id, grant_id, "an authorization code was presented twice: its grant is revoked");
            }
            tx.commit().await?;
            return Err(unusable_code());
        };
        let issued = IssuedCode {
            client_id: &row.client_id,
            redirect_uri: &row.redirect_uri,
            code_challenge: &row.code_challenge,
            expires_at: row.expires_at,
        };
        let checked =
            check_redemption(&issued, &client.client, redirect_uri, verifier, now, sha256)
                .map_err(DelegatedError::OAuth)
                // A code of a deleted client with the same id (spent at the deletion anyway).
                .and_then(|()| {
                    same_instance(row.client_instance, client.instance)
                        .then_some(())
                        .ok_or_else(unusable_code)
                });
        // A deleted account fails the check; a database failure is a 503, and the code stays unspent.
        let account = match tx.account_get(&row.account_id, false).await {
            Ok(a) => Some(a),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let checked = checked.and_then(|()| match &account {
            Some(a) if a.enabled => partner
                .check(a.partner_id.as_deref())
                .map_err(DelegatedError::OAuth),
            _ => Err(unusable_code()),
        });
        let resource = self.registry.resources().get(&row.resource).cloned();
        let resource = match checked.and_then(|()| resource.ok_or_else(unusable_code)) {
            Ok(r) => r,
            Err(e) => {
                // A failed check spends the code: the consumption is committed.
                tx.commit().await?;
                return Err(e);
            }
        };
        let lifetime = client
            .client
            .refresh_token_ttl
            .unwrap_or(self.refresh_token_ttl);
        let grant = GrantRow {
            id: random_id("grt_"),
            account_id: row.account_id.clone(),
            client_id: client.client.id.clone(),
            client_instance: client.instance,
            resource: row.resource.clone(),
            scopes: row.scopes.clone(),
            created_at: now,
            expires_at: now + lifetime,
            revoked_at: None,
            refresh_gen: 0,
            refreshed_at: now,
            // RFC 9449 §5: a public client's refresh tokens work only with the key that redeemed the code.
            dpop_jkt: jkt.filter(|_| client.client.is_public()).map(str::to_owned),
        };
        tx.grant_insert(&grant).await?;
        tx.code_set_grant(&digest, &grant.id).await?;
        let scope = ScopeSet::from_tokens(split_list(&grant.scopes));
        let response = self
            .issue_in(&mut tx, client, &grant, (&resource, &scope, jkt), now)
            .await?;
        tx.commit().await?;
        Ok(response)
    }

    /// RFC 6749 §6: rotates a refresh token. Exactly one of any number of concurrent uses wins; a spent token
    /// presented again by its client (a replay, or a loser of that race) revokes the whole family (RFC 9700
    /// §4.14.2). A family unused for `refresh_token_idle_ttl` is refused like an expired one.
    pub(crate) async fn refresh_token(
        &self,
        client: &CachedClient,
        params: &Params,
        partner: PartnerCheck<'_>,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, DelegatedError> {
        may_use(client, GrantType::RefreshToken)?;
        let token = params
            .required("refresh_token")
            .map_err(DelegatedError::OAuth)?;
        let asked_scope = params.single("scope").map_err(DelegatedError::OAuth)?;
        let presented = refresh::read(&self.master, token);
        // Not a token Keyward made: refused without a transaction (on SQLite one would take the write lock).
        if presented == Presented::Unknown {
            return Err(unusable_refresh());
        }
        let digest = self.master.digest(token);
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let advance = |grant_id, generation| Advance {
            grant_id,
            generation,
            client_id: &client.client.id,
            client_instance: client.instance,
            now,
            idle_ttl: self.refresh_token_idle_ttl,
        };
        let won = match &presented {
            Presented::Derived {
                grant_id,
                generation,
            } => {
                tx.grant_advance(&advance(grant_id, Some(*generation)))
                    .await?
            }
            Presented::Stored => match tx
                .refresh_use(&digest, &client.client.id, client.instance, now)
                .await?
            {
                // Spent now; the grant refuses (revoked, past its end, idle): roll back, nothing changes.
                Some(grant_id) => match tx.grant_advance(&advance(&grant_id, None)).await? {
                    Some(g) => Some(g),
                    None => return Err(unusable_refresh()),
                },
                None => None,
            },
            Presented::Unknown => None,
        };
        let Some(grant) = won else {
            if let Some(grant_id) = self.reused(&mut tx, client, &presented, &digest).await? {
                self.revoke_grant_in(
                    &mut tx,
                    &grant_id,
                    "refresh.reused",
                    &client_actor(client),
                    now,
                )
                .await?;
                tx.commit().await?;
                tracing::warn!(client_id = %client.client.id, grant_id, "a used refresh token was presented again: its grant is revoked");
            }
            return Err(unusable_refresh());
        };
        // Checks that fail from here roll the transaction back (dropped uncommitted): the token stays unused,
        // since nothing was issued and the caller may be its rightful holder asking for too much.
        if let Some(bound) = &grant.dpop_jkt
            && jkt != Some(bound.as_str())
        {
            return Err(DelegatedError::OAuth(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "this refresh token is bound to a DPoP key: send a proof signed with it",
            )));
        }
        let account = tx.account_get(&grant.account_id, false).await?;
        if !account.enabled {
            return Err(unusable_refresh());
        }
        partner
            .check(account.partner_id.as_deref())
            .map_err(DelegatedError::OAuth)?;
        let granted = ScopeSet::from_tokens(split_list(&grant.scopes));
        let scope = refresh_scope(&granted, asked_scope).map_err(DelegatedError::OAuth)?;
        let resource = self
            .registry
            .resources()
            .get(&grant.resource)
            .cloned()
            .ok_or_else(unusable_refresh)?;
        let response = self
            .issue_in(&mut tx, client, &grant, (&resource, &scope, jkt), now)
            .await?;
        tx.commit().await?;
        Ok(response)
    }

    /// The grant whose spent refresh token `client` presented again, if it did: a replay (or a loser of a race
    /// for the token). Unknown tokens, current ones refused for another reason, and another client's are not.
    async fn reused(
        &self,
        tx: &mut Tx,
        client: &CachedClient,
        presented: &Presented,
        digest: &[u8],
    ) -> Result<Option<String>, DelegatedError> {
        let mine = |id: &str, instance: i64| {
            id == client.client.id && same_instance(instance, client.instance)
        };
        Ok(match presented {
            Presented::Derived {
                grant_id,
                generation,
            } => tx
                .grant_get(grant_id)
                .await?
                .filter(|g| mine(&g.client_id, g.client_instance) && g.refresh_gen > *generation)
                .map(|g| g.id),
            Presented::Stored => tx
                .refresh_find(digest)
                .await?
                .filter(|(row, owner, instance)| mine(owner, *instance) && row.used_at.is_some())
                .map(|(row, ..)| row.grant_id),
            Presented::Unknown => None,
        })
    }

    /// The grant a refresh token belongs to, when it is `caller`'s, with when the token was issued and whether
    /// it is its family's live one. Any token of the family counts, spent or not.
    async fn family_of(
        &self,
        tx: &mut Tx,
        caller: &CachedClient,
        token: &str,
    ) -> Result<Option<(GrantRow, i64, bool)>, DelegatedError> {
        let mine = |g: &GrantRow| {
            may_see_refresh(&caller.client, &g.client_id)
                && same_instance(g.client_instance, caller.instance)
        };
        Ok(match refresh::read(&self.master, token) {
            Presented::Derived {
                grant_id,
                generation,
            } => tx.grant_get(&grant_id).await?.filter(mine).map(|g| {
                let live = g.refresh_gen == generation;
                let issued = g.last_used();
                (g, issued, live)
            }),
            Presented::Stored => match tx.refresh_find(&self.master.digest(token)).await? {
                Some((row, ..)) => tx
                    .grant_get(&row.grant_id)
                    .await?
                    .filter(mine)
                    .map(|g| (g, row.created_at, row.used_at.is_none())),
                None => None,
            },
            Presented::Unknown => None,
        })
    }

    /// RFC 7009 §2.1 for a refresh token: revokes its whole grant (every refresh token of the family and the access
    /// tokens they issued). Only the client it was issued to may; anything else, or an unknown token, is a success
    /// that changes nothing (§2.2).
    pub(crate) async fn revoke_refresh(
        &self,
        caller: &CachedClient,
        token: &str,
    ) -> Result<(), DelegatedError> {
        // Not a token Keyward made: nothing to revoke, and no transaction (nor SQLite's write lock) for it.
        if refresh::read(&self.master, token) == Presented::Unknown {
            return Ok(());
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if let Some((grant, ..)) = self.family_of(&mut tx, caller, token).await? {
            let actor = Actor::client(&caller.client.id, "oauth2/revoke".into());
            self.revoke_grant_in(&mut tx, &grant.id, "refresh.revoked", &actor, now)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// RFC 7662 §2.1 for a refresh token: active while it is its family's live token, the family is neither
    /// revoked nor past its end (nor idle past `refresh_token_idle_ttl`), and its account may still use it; shown
    /// only to the client it was issued to.
    pub(crate) async fn introspect_refresh(
        &self,
        caller: &CachedClient,
        token: &str,
    ) -> Result<Introspection, DelegatedError> {
        let now = self.clock.now();
        let mut tx = self.store.begin_read().await?;
        let Some((grant, iat, live)) = self.family_of(&mut tx, caller, token).await? else {
            return Ok(Introspection::inactive());
        };
        let exp = match self.refresh_token_idle_ttl {
            Some(idle) => grant.expires_at.min(grant.last_used() + idle),
            None => grant.expires_at,
        };
        let account = match tx.account_get(&grant.account_id, false).await {
            Ok(a) => Some(a),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        tx.commit().await?;
        if !live || grant.revoked_at.is_some() || now >= exp || !account.is_some_and(|a| a.enabled)
        {
            return Ok(Introspection::inactive());
        }
        Ok(Introspection::refresh(RefreshDetails {
            scope: grant.scopes,
            client_id: grant.client_id,
            sub: grant.account_id,
            aud: grant.resource,
            iss: self.issuer.clone(),
            iat,
            exp,
        }))
    }

    /// Signs an access token of `grant` for `resource` with `scope` (bound to the DPoP key `jkt` when there is one),
    /// records it with its family, and returns it with the family's refresh token of the grant's current
    /// generation.
    async fn issue_in(
        &self,
        tx: &mut Tx,
        client: &CachedClient,
        grant: &GrantRow,
        (resource, scope, jkt): (&Resource, &ScopeSet, Option<&str>),
        now: i64,
    ) -> Result<TokenResponse, DelegatedError> {
        if jkt.is_none() && resource.require_dpop {
            return Err(DelegatedError::OAuth(dpop_required()));
        }
        // The access token never outlives the grant.
        let ttl = resource.access_token_ttl.min(grant.expires_at - now).max(1);
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: grant.account_id.clone(),
            aud: resource.identifier.clone(),
            exp: now + ttl,
            iat: now,
            // The client's instance, not the grant's: a grant an earlier release made carries none.
            jti: token_id(client.instance),
            client_id: grant.client_id.clone(),
            scope: (!scope.is_empty()).then(|| scope.to_string()),
            nbf: None,
            cnf: jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
        };
        let access_token = self
            .keys
            .sign(resource.signing_alg, &claims, now)
            .map_err(DelegatedError::signing)?;
        tx.grant_token_insert(&grant.id, &claims.jti, claims.exp + LEEWAY_SECONDS)
            .await?;
        let refresh =
            refresh::make(&self.master, &grant.id, grant.refresh_gen).ok_or_else(|| {
                DelegatedError::Internal(anyhow::anyhow!(
                    "grant {} cannot carry a refresh token (generation {})",
                    grant.id,
                    grant.refresh_gen
                ))
            })?;
        Ok(TokenResponse {
            access_token,
            token_type: token_type(jkt),
            expires_in: ttl,
            refresh_token: Some(refresh),
            scope: claims.scope,
        })
    }

    /// Revokes a grant inside `tx`: marks it, denylists every access token of its family that is still alive,
    /// and records why in the audit log.
    pub(crate) async fn revoke_grant_in(
        &self,
        tx: &mut Tx,
        grant_id: &str,
        reason: &str,
        actor: &Actor,
        now: i64,
    ) -> Result<(), DelegatedError> {
        let alive = tx.grant_revoke(grant_id, now, LEEWAY_SECONDS).await?;
        for (jti, until) in &alive {
            tx.revoke_jti(jti, *until).await?;
        }
        tx.audit(
            &NewAudit {
                actor: &actor.who,
                source: &actor.source,
                action: "grant.revoke",
                target: grant_id,
                detail: json!({"reason": reason, "access_tokens_revoked": alive.len()}).to_string(),
            },
            now,
        )
        .await?;
        tx.change("revoked", grant_id, now).await?;
        Ok(())
    }
}

/// The audit actor of a token request: the client, at the token endpoint.
/// RFC 9449 §7.1: the answer to a token request without a proof for a resource that takes DPoP-bound tokens only.
pub(crate) fn dpop_required() -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidDpopProof,
        "tokens for this resource must be DPoP-bound: send a DPoP proof",
    )
}

/// RFC 9449 §5: `DPoP` for a token bound to a key, `Bearer` otherwise (RFC 6750).
pub(crate) fn token_type(jkt: Option<&str>) -> &'static str {
    if jkt.is_some() { "DPoP" } else { "Bearer" }
}

fn client_actor(client: &CachedClient) -> Actor {
    Actor::client(&client.client.id, "oauth2/token".into())
}
