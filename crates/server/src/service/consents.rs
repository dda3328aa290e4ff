//! Consents and grants: the apps an account authorized (given on the consent page, withdrawn by the account or
//! an operator) and the grants behind them, listed and revoked.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use super::delegated::DelegatedError;
use super::{Actor, Delegated, Outcome, Refusal};
use crate::clock::Clock;
use crate::registry::Registry;
use crate::store::{ConsentRow, GrantFilter, GrantRow, Store, StoreError, split_list};

/// What the consents service answers instead of doing what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// No such authorization or grant (or not the account's).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<DelegatedError> for ConsentError {
    fn from(e: DelegatedError) -> Self {
        match e {
            DelegatedError::Store(e) => Self::Store(e),
            DelegatedError::Internal(e) => Self::Internal(e),
            e => Self::Internal(anyhow::anyhow!("revoking a grant: {e}")),
        }
    }
}

impl Outcome for ConsentError {
    fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::NotFound(_) => Some(Refusal::NotFound),
            Self::Store(_) | Self::Internal(_) => None,
        }
    }
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// A grant as the admin API and the CLI show it: its scopes as a list. Its members are in the order the admin API
/// has always written them (alphabetical).
#[derive(Debug, Clone, Serialize)]
pub struct GrantView {
    /// The account that authorized the app.
    pub account_id: String,
    /// The app.
    pub client_id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds: the grant's absolute end.
    pub expires_at: i64,
    /// `grt_…`.
    pub id: String,
    /// The resource.
    pub resource: String,
    /// Unix seconds, when revoked.
    pub revoked_at: Option<i64>,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// Unix seconds of the last refresh (0: never); the CLI lists it, the admin API does not.
    #[serde(skip)]
    pub refreshed_at: i64,
}

impl From<&GrantRow> for GrantView {
    fn from(g: &GrantRow) -> Self {
        GrantView {
            account_id: g.account_id.clone(),
            client_id: g.client_id.clone(),
            created_at: g.created_at,
            expires_at: g.expires_at,
            id: g.id.clone(),
            resource: g.resource.clone(),
            revoked_at: g.revoked_at,
            scopes: split_list(&g.scopes),
            refreshed_at: g.refreshed_at,
        }
    }
}

/// What accounts delegated to apps.
pub struct Consents {
    /// Consents and grants.
    pub store: Store,
    /// Clients in memory (an app's name).
    pub registry: Arc<Registry>,
    /// Where time comes from.
    pub clock: Clock,
    /// Revokes grants.
    pub delegated: Arc<Delegated>,
}

/// An app an account authorized, as the account and the admin API see it.
#[derive(Debug, Clone, Serialize)]
pub struct Authorized {
    /// The app.
    pub client_id: String,
    /// Its display name.
    pub name: String,
    /// The resource.
    pub resource: String,
    /// The scopes agreed to.
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub authorized_at: i64,
}

impl Consents {
    /// The apps an account authorized.
    pub async fn authorized_apps(&self, account_id: &str) -> Result<Vec<Authorized>, ConsentError> {
        let consents = self.store.consents_for(account_id).await?;
        let mut out = Vec::with_capacity(consents.len());
        for c in consents {
            out.push(self.authorized(c).await?);
        }
        Ok(out)
    }

    async fn authorized(&self, c: ConsentRow) -> Result<Authorized, ConsentError> {
        let name = self
            .registry
            .client(&self.store, &c.client_id)
            .await?
            .map(|k| k.client.name.clone())
            .unwrap_or_else(|| c.client_id.clone());
        Ok(Authorized {
            client_id: c.client_id,
            name,
            resource: c.resource,
            scopes: split_list(&c.scopes),
            authorized_at: c.updated_at,
        })
    }

    /// Whether the account already agreed to every scope of this request (consent is remembered).
    pub async fn consented(
        &self,
        account_id: &str,
        client_id: &str,
        resource: &str,
        scope: &keyward_core::scope::ScopeSet,
    ) -> Result<bool, ConsentError> {
        let Some(c) = self
            .store
            .consent_get(account_id, client_id, resource)
            .await?
        else {
            return Ok(false);
        };
        let agreed = keyward_core::scope::ScopeSet::from_tokens(split_list(&c.scopes));
        Ok(scope.is_subset(&agreed))
    }

    /// Records consent (widening any earlier one to include these scopes).
    pub async fn consent_give(
        &self,
        account_id: &str,
        client_id: &str,
        resource: &str,
        scope: &keyward_core::scope::ScopeSet,
    ) -> Result<(), ConsentError> {
        let now = self.clock.now();
        let earlier = self
            .store
            .consent_get(account_id, client_id, resource)
            .await?;
        let mut all: Vec<String> = earlier.map(|c| split_list(&c.scopes)).unwrap_or_default();
        all.extend(scope.iter().map(str::to_owned));
        let merged = keyward_core::scope::ScopeSet::from_tokens(all);
        let actor = Actor {
            who: format!("account:{account_id}"),
            source: "consent".into(),
        };
        let mut tx = self.store.begin().await?;
        tx.consent_upsert(account_id, client_id, resource, &merged.to_string(), now)
            .await?;
        tx.audit(
            &actor.entry(
                "consent.give",
                client_id,
                json!({"resource": resource, "scopes": merged.to_vec()}),
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Withdraws an account's consent to an app and revokes every grant the app holds from it. `NotFound` when
    /// the account had not authorized the app.
    pub async fn consent_withdraw(
        &self,
        actor: &Actor,
        account_id: &str,
        client_id: &str,
    ) -> Result<(), ConsentError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let removed = tx.consent_delete(account_id, client_id).await?;
        let grants = tx.grants_of(account_id, client_id).await?;
        if removed == 0 && grants.is_empty() {
            return Err(ConsentError::NotFound("authorization"));
        }
        for g in &grants {
            self.delegated
                .revoke_grant_in(&mut tx, g, "consent.withdrawn", actor, now)
                .await?;
        }
        tx.audit(
            &actor.entry(
                "consent.withdraw",
                client_id,
                json!({"account_id": account_id, "grants_revoked": grants.len()}),
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A page of grants.
    pub async fn grants_list(
        &self,
        filter: &GrantFilter<'_>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<GrantView>, ConsentError> {
        let rows = self
            .store
            .grants_page(filter, after, limit.clamp(1, 1_000))
            .await?;
        Ok(rows.iter().map(GrantView::from).collect())
    }

    /// One grant.
    pub async fn grant_get(&self, id: &str) -> Result<GrantView, ConsentError> {
        match self.store.grant_get(id).await {
            Ok(g) => Ok(GrantView::from(&g)),
            Err(StoreError::NotFound) => Err(ConsentError::NotFound("grant")),
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes one grant (its refresh tokens stop working, its access tokens are denylisted).
    pub async fn grant_revoke(&self, actor: &Actor, id: &str) -> Result<(), ConsentError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if tx.grant_get(id).await?.is_none() {
            return Err(ConsentError::NotFound("grant"));
        }
        self.delegated
            .revoke_grant_in(&mut tx, id, "revoked", actor, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
