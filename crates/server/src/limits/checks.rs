//! The request-path checks, in the order a token request meets them: the address's rate, whether an address may
//! try a client id after failures, counting a failure, the client's rate, the token quotas (`Spent`, to give back).

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use keyward_core::limit::Window;

use super::bucket::Kind;
use super::source::fold;
use super::{Limit, Limits, Refusal, Source};
use crate::config::Endpoint;
use crate::registry::CachedClient;
use crate::store::Store;

/// The request-path checks, in the order `App::authenticate` and `App::token` run them.
impl Limits {
    /// Before anything else: requests from `address` to `endpoint`.
    pub async fn address(
        &self,
        store: &Store,
        endpoint: Endpoint,
        source: &Source,
        now_us: i64,
    ) -> Result<(), Refusal> {
        let Some(rate) = self.settings.per_address[endpoint as usize] else {
            return Ok(());
        };
        let key = format!("{}/address/{}", endpoint.name(), source.key());
        self.take(
            store,
            &key,
            Kind::Rate(rate),
            Limit::Address(endpoint),
            now_us,
        )
        .await
    }

    /// Before the secret is checked: whether `address` may try to authenticate as `client_id` at all. An address
    /// that failed too often is refused; a client id that failed too often from everywhere is refused to every
    /// address except those that have authenticated as it, so an attacker cannot lock its owner out.
    pub fn may_try(&self, client_id: &str, source: &Source, now_us: i64) -> Result<(), Refusal> {
        // No failure lately: nothing can refuse, and nothing is looked up.
        if now_us > self.failures_until.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(rate) = self.settings.failed_auth_address {
            let key = format!("failed/address/{}", source.key());
            if let Some(wait) = self.refused_now(&key, Kind::Rate(rate), now_us) {
                return Err(self.refuse(Limit::FailedAddress, wait));
            }
        }
        if let Some(rate) = self.settings.failed_auth_client {
            let key = self.failed_client_key(client_id);
            if let Some(wait) = self.refused_now(&key, Kind::Rate(rate), now_us) {
                if !self.is_known(client_id, source.ip, now_us / 1_000_000) {
                    return Err(self.refuse(Limit::FailedClient, wait));
                }
            }
        }
        Ok(())
    }

    /// After a wrong secret or an unknown client id (the same path for both): counts the failure against the
    /// address and the client id.
    pub async fn failed(&self, store: &Store, client_id: &str, source: &Source, now_us: i64) {
        // Until the slowest failure limit has refilled from a whole burst, `may_try` must look.
        let refill = [
            self.settings.failed_auth_address,
            self.settings.failed_auth_client,
        ]
        .into_iter()
        .flatten()
        .map(|r| (r.burst() as i64).saturating_mul(r.interval_us()))
        .max()
        .unwrap_or(0);
        self.failures_until.fetch_max(
            now_us.saturating_add(refill).saturating_add(1_000_000),
            Ordering::Relaxed,
        );
        if let Some(rate) = self.settings.failed_auth_address {
            let key = format!("failed/address/{}", source.key());
            let _ = self
                .take(store, &key, Kind::Rate(rate), Limit::FailedAddress, now_us)
                .await;
        }
        if let Some(rate) = self.settings.failed_auth_client {
            let key = self.failed_client_key(client_id);
            let _ = self
                .take(store, &key, Kind::Rate(rate), Limit::FailedClient, now_us)
                .await;
        }
    }

    /// After a successful authentication: remembers the address as one the client uses, and spends one request
    /// of the client's rate on `endpoint` (its own override, else the server's).
    pub async fn client(
        &self,
        store: &Store,
        endpoint: Endpoint,
        client: &CachedClient,
        ip: IpAddr,
        now_us: i64,
    ) -> Result<(), Refusal> {
        let client_id = client.client.id.as_str();
        if self.settings.failed_auth_client.is_some() {
            // Once a minute per client and address is enough to know it; the common case is one atomic swap.
            let now = now_us / 1_000_000;
            let mark = ((now / 60) as u64) << 32 | u64::from(fold(ip));
            if client.remembered.swap(mark, Ordering::Relaxed) != mark {
                self.remember(client_id, ip, now);
            }
        }
        let own = client.rate(endpoint);
        let Some(rate) = own.unwrap_or(self.settings.per_client[endpoint as usize]) else {
            return Ok(());
        };
        // Keyed by the client's instance too: a client made again with the same id starts afresh.
        let key = format!(
            "{}/client/{client_id}/{:x}",
            endpoint.name(),
            client.instance
        );
        self.take(
            store,
            &key,
            Kind::Rate(rate),
            Limit::Client(endpoint),
            now_us,
        )
        .await
    }

    /// Before a token is issued: one token of each quota in force (the client's own, else the server's; 0 is
    /// none). Returns the quota keys spent, to give back if the token is then not issued.
    pub async fn quota(
        &self,
        store: &Store,
        client: &CachedClient,
        now_us: i64,
    ) -> Result<Spent, Refusal> {
        let (client_id, own) = (&client.client.id, client.quotas());
        let mut spent = Spent::default();
        let server = [self.settings.tokens_per_hour, self.settings.tokens_per_day];
        for (i, window) in [Window::Hour, Window::Day].into_iter().enumerate() {
            let q = own[i].unwrap_or(server[i]);
            if q == 0 {
                continue;
            }
            let start = window.start(now_us / 1_000_000);
            let key = format!(
                "quota/{}/{client_id}/{:x}/{start}",
                window.name(),
                client.instance
            );
            if let Err(r) = self
                .take(
                    store,
                    &key,
                    Kind::Quota(q, window),
                    Limit::Quota(window),
                    now_us,
                )
                .await
            {
                self.give_back_all(&spent, now_us);
                return Err(r);
            }
            spent.keys.push((key, window));
        }
        Ok(spent)
    }

    /// Gives back what `quota` spent (the token was refused after all).
    pub fn give_back_all(&self, spent: &Spent, now_us: i64) {
        for (key, window) in &spent.keys {
            self.give_back(key, now_us, *window);
        }
    }

    /// The failure key of a presented client id. An id longer than any real one (the caller chose it) is keyed by
    /// its hash, so a bucket's key stays short whatever was sent.
    fn failed_client_key(&self, client_id: &str) -> String {
        if client_id.len() <= 255 {
            format!("failed/client/{client_id}")
        } else {
            format!("failed/client/#{:016x}", self.hasher.hash_one(client_id))
        }
    }
}

/// Quota cells spent on a token being issued.
#[derive(Debug, Default)]
pub struct Spent {
    keys: Vec<(String, Window)>,
}
