//! The start-up steps every process that acts on the database takes, the server (`App::open`) and the CLI's admin
//! commands (`Toolkit::open`) alike: connect, migrate, derive the master keys, take the database's clock, then
//! first start and the resources the configuration declares.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::MasterKeys;
use crate::first_start::{self, FirstStart};
use crate::store::{Store, StoreError};

/// A node whose wall clock is this many seconds off the database's says so at start.
const WALL_OFFSET_WARNING: i64 = 2;

/// What start-up leaves: a migrated store, the master keys, and the first start's admin credentials when this
/// process made them.
pub struct Started {
    /// The data layer, migrated.
    pub store: Store,
    /// Pepper, key-encryption key and refresh-token key.
    pub master: Arc<MasterKeys>,
    /// The admin client made by first start (its secret shown once), when this process ran it.
    pub first: Option<FirstStart>,
}

/// Connects and migrates, derives the master keys (generating the key file when there is none), takes the
/// database's clock into `clock`, runs first start if no node has, and creates the declared resources.
pub async fn open(config: &Config, clock: &Clock) -> anyhow::Result<Started> {
    config.create_data_dir()?;
    let store = Store::connect(&config.database, &config.pool)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot open database {}: {e}", redact_url(&config.database))
        })?;
    store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
    let (master_key, generated) = config.master_key()?;
    if generated {
        tracing::info!(path = %config.data_dir.join("keyward.secret").display(), "generated a new master key");
    }
    let master = Arc::new(MasterKeys::derive(&master_key)?);
    // Everything the cluster shares is timed by the database's clock, from the first write on.
    crate::clock::first_sample(clock, &store).await?;
    let off = clock.wall_offset();
    if off.abs() >= WALL_OFFSET_WARNING {
        tracing::warn!(
            seconds = off,
            "this machine's clock differs from the database's; Keyward uses the database's"
        );
    }
    let first = first_start::bootstrap(&store, &master, clock.now()).await?;
    first_start::declare_resources(&store, config, clock.now()).await?;
    Ok(Started {
        store,
        master,
        first,
    })
}

/// How long a token may live, seconds: what the key rotation plan keeps keys published for. Keys stay published
/// while any token they signed can live: a resource may still have a lifetime set before max_access_token_ttl was
/// lowered.
pub async fn max_token_ttl(store: &Store, config: &Config) -> Result<i64, StoreError> {
    let longest = store
        .resources_all()
        .await?
        .iter()
        .map(|r| r.access_token_ttl)
        .max()
        .unwrap_or(0);
    Ok(config.max_access_token_ttl.max(longest))
}

fn redact_url(url: &str) -> String {
    // postgres://user:password@host/db → postgres://user:***@host/db
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if url[s + 3..at].contains(':') => {
            let colon = s + 3 + url[s + 3..at].find(':').unwrap_or(0);
            format!("{}:***{}", &url[..colon], &url[at..])
        }
        _ => url.to_owned(),
    }
}
