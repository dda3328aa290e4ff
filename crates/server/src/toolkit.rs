//! The services the CLI's admin commands call, without the server's state: `Toolkit::open` takes the start-up
//! steps every process takes (`startup`) and builds Admin, Accounts and Consents, with Delegated under them (it
//! revokes grants), over the store. No client, key material, limit or metric is loaded: clients are read from the
//! store, the signing keys' metadata only, and a commit updates no memory (running servers follow the change
//! feed). `App::open` builds the same services over its memory (`Toolkit::build`), and the rest beside them.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::MasterKeys;
use crate::first_start::FirstStart;
use crate::keys::KeyRing;
use crate::memory::{NothingHeld, OnCommit};
use crate::registry::Registry;
use crate::service::{Accounts, Admin, Consents, Delegated, Resets};
use crate::startup::{self, Started};
use crate::store::Store;
use crate::usage::Usage;

/// The store, the clock, and the services an admin command calls; cloning it clones pointers.
#[derive(Clone)]
pub struct Toolkit {
    /// The data layer.
    pub store: Store,
    /// Where time comes from.
    pub clock: Clock,
    /// Codes, grants and refresh tokens (here: revoking grants).
    pub delegated: Arc<Delegated>,
    /// Clients, secrets, resources, signing keys, audit.
    pub admin: Arc<Admin>,
    /// Accounts.
    pub accounts: Arc<Accounts>,
    /// Consents and grants.
    pub consents: Arc<Consents>,
    /// Password reset links.
    pub resets: Arc<Resets>,
}

/// What the services read of this process's memory, and the hook that updates it after their commits.
pub(crate) struct Held {
    /// Clients and resources.
    pub registry: Arc<Registry>,
    /// Signing keys.
    pub keys: Arc<KeyRing>,
    /// Applies a change this process committed.
    pub memory: Arc<dyn OnCommit>,
    /// Tokens issued per key per hour, not yet flushed.
    pub usage: Arc<Usage>,
}

impl Toolkit {
    /// Connects, migrates, runs first start if needed, and builds the services over the store: a registry never
    /// loaded (every client is read from the store), the signing keys' metadata (none decrypted: Delegated signs
    /// nothing here), no usage counted, and nothing to update after a commit.
    pub async fn open(
        config: &Config,
        clock: Clock,
    ) -> anyhow::Result<(Toolkit, Option<FirstStart>)> {
        let Started {
            store,
            master,
            first,
        } = startup::open(config, &clock).await?;
        let max_ttl = startup::max_token_ttl(&store, config).await?;
        let held = Held {
            registry: Arc::new(Registry::unloaded()),
            keys: Arc::new(KeyRing::listing(&store.keys_all().await?, max_ttl)?),
            memory: Arc::new(NothingHeld),
            usage: Arc::new(Usage::default()),
        };
        Ok((Toolkit::build(config, store, master, clock, held), first))
    }

    /// The services over `held`: the server's memory (`App::open`) or the store alone (`Toolkit::open`).
    pub(crate) fn build(
        config: &Config,
        store: Store,
        master: Arc<MasterKeys>,
        clock: Clock,
        held: Held,
    ) -> Toolkit {
        let delegated = Arc::new(Delegated {
            store: store.clone(),
            registry: held.registry.clone(),
            keys: held.keys.clone(),
            master: master.clone(),
            clock: clock.clone(),
            issuer: config.issuer.clone(),
            code_ttl: config.authorization_code_ttl,
            refresh_token_ttl: config.refresh_token_ttl,
            refresh_token_idle_ttl: config.refresh_token_idle_ttl,
        });
        let resets = Arc::new(Resets {
            store: store.clone(),
            master: master.clone(),
            clock: clock.clone(),
            issuer: config.issuer.clone(),
            email: config.smtp.is_some(),
        });
        let admin = Arc::new(Admin {
            store: store.clone(),
            master,
            clock: clock.clone(),
            memory: held.memory.clone(),
            registry: held.registry.clone(),
            keys: held.keys,
            max_access_token_ttl: config.max_access_token_ttl,
            key_publish_delay: config.key_publish_delay,
            default_client_resource: config.default_client_resource.clone(),
            usage: held.usage,
        });
        let accounts = Arc::new(Accounts {
            store: store.clone(),
            clock: clock.clone(),
            memory: held.memory,
            delegated: delegated.clone(),
        });
        let consents = Arc::new(Consents {
            store: store.clone(),
            registry: held.registry,
            clock: clock.clone(),
            delegated: delegated.clone(),
        });
        Toolkit {
            store,
            clock,
            delegated,
            admin,
            accounts,
            consents,
            resets,
        }
    }
}
