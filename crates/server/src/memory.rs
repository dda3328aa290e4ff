//! This node's copy of what the cluster shares (clients and resources in the registry, signing keys in the key
//! ring) and the one way a change reaches it: an entry of the change feed, applied by re-reading what it names.
//! Services call [`OnCommit::committed`] after their own commits; the feed follower calls [`Memory::apply`] for
//! everyone else's. A process that holds no memory (the CLI) gives the services [`NothingHeld`] instead.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::crypto::MasterKeys;
use crate::keys::KeyRing;
use crate::registry::Registry;
use crate::store::Store;

/// Clients, resources and signing keys in memory, and how to bring them up to date.
pub struct Memory {
    /// Clients and resources.
    pub registry: Arc<Registry>,
    /// Signing keys.
    pub keys: Arc<KeyRing>,
    master: Arc<MasterKeys>,
    store: Store,
}

impl Memory {
    /// Wraps what was loaded at start; `store` is where a service's own committed changes are read back from.
    pub fn new(
        registry: Arc<Registry>,
        keys: Arc<KeyRing>,
        master: Arc<MasterKeys>,
        store: Store,
    ) -> Self {
        Self {
            registry,
            keys,
            master,
            store,
        }
    }

    /// Applies one entry of the change feed, reading what changed through `store` (the feed follower passes the
    /// control connections, so changes keep arriving while requests hold every pooled connection).
    pub async fn apply(&self, store: &Store, kind: &str, key: &str) -> anyhow::Result<()> {
        match kind {
            // Until the clients are read into memory they come from the store, and the load replays the feed.
            "client" | "clients" if !self.registry.is_populated() => {}
            "client" => self.registry.reload_client(store, key).await?,
            "clients" => {
                self.registry.reload_clients(store).await?;
            }
            "resource" => self.registry.reload_resources(store).await?,
            "key" => self.keys.reload(&store.keys_all().await?, &self.master)?,
            _ => {}
        }
        Ok(())
    }
}

/// The services' commit hook: what a process does with a change it has just committed (the kind and key of its
/// change-feed entry). Other processes see the change through the feed.
pub trait OnCommit: Send + Sync {
    /// Called after the commit; never fails, since the change stands once committed.
    fn committed<'a>(&'a self, kind: &'a str, key: &'a str) -> BoxFuture<'a, ()>;
}

impl OnCommit for Memory {
    /// Applies the change to this node's memory at once. If reading it back fails (the database went away just
    /// after the commit), the caller's answer is still a success, and the feed follower applies it when it reads
    /// the feed again.
    fn committed<'a>(&'a self, kind: &'a str, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.apply(&self.store, kind, key).await {
                tracing::warn!(error = %e, kind, "a committed change is applied to memory from the feed later");
            }
        })
    }
}

/// The commit hook of a process that holds nothing in memory (the CLI): there is nothing to update, and running
/// servers follow the change feed.
pub struct NothingHeld;

impl OnCommit for NothingHeld {
    fn committed<'a>(&'a self, _kind: &'a str, _key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
}
