//! The wiring: opens the store, runs first start, loads what memory holds, and builds each service over the
//! shared parts it uses. `App` keeps the services and those shared pointers, nothing else; the routers take the
//! service they use from it (`FromRef`). The background tasks are in `follower` and `housekeeping`, serving in
//! `serve`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;

use crate::clock::Clock;
use crate::config::{Config, TokenEndpoint};
use crate::crypto::MasterKeys;
use crate::feed::FeedHealth;
use crate::first_start::{self, FirstStart};
use crate::keys::KeyRing;
use crate::limits::Limits;
use crate::memory::Memory;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::service::{Accounts, Admin, ApiKeys, Consents, Delegated, Issuer, Sessions};
use crate::store::Store;
use crate::usage::Usage;

/// The services and the shared parts under them; cloning it clones pointers.
#[derive(Clone)]
pub struct App {
    /// Tokens: authenticate, issue, introspect, revoke.
    pub issuer: Arc<Issuer>,
    /// Codes, grants and refresh tokens.
    pub delegated: Arc<Delegated>,
    /// Clients, secrets, resources, signing keys, audit.
    pub admin: Arc<Admin>,
    /// Accounts.
    pub accounts: Arc<Accounts>,
    /// Logins and sessions.
    pub sessions: Arc<Sessions>,
    /// Consents and grants.
    pub consents: Arc<Consents>,
    /// An account's own API keys (the console).
    pub api_keys: Arc<ApiKeys>,
    /// The data layer.
    pub store: Store,
    /// Clients, resources and signing keys in memory.
    pub memory: Arc<Memory>,
    /// Pepper and key-encryption key.
    pub master: Arc<MasterKeys>,
    /// Where time comes from.
    pub clock: Clock,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Rate limits, quotas and failed-authentication limits, with their state.
    pub limits: Arc<Limits>,
    /// Tokens issued per client per hour, not yet flushed.
    pub usage: Arc<Usage>,
    /// Whether the database was reachable at the last read of the change feed, and when that was.
    pub feed: Arc<FeedHealth>,
    /// What the configuration says about this node.
    pub settings: Arc<Settings>,
}

/// What the edges and the background tasks read of the configuration, and this node's start.
#[derive(Debug)]
pub struct Settings {
    /// The issuer URL.
    pub issuer: String,
    /// JWKS `max-age`, seconds.
    pub jwks_max_age: i64,
    /// Whether cookies are `Secure` (the issuer is https).
    pub secure_cookies: bool,
    /// Token endpoint aliases from the configuration.
    pub token_endpoints: Vec<Arc<TokenEndpoint>>,
    /// How long a connection may take over a request, sit idle, or leave a response unread.
    pub timeouts: crate::conn::Timeouts,
    /// How often `usage` is flushed.
    pub usage_flush_interval: Duration,
    /// How long audit entries are kept, seconds.
    pub audit_retention: i64,
    /// How long tokens keep being issued from memory while the database is unreachable.
    pub stale_while_unreachable: Duration,
    /// This process's name in leases (random, per start).
    pub node_id: String,
    /// The change-feed position the in-memory state was loaded at.
    pub feed_start: i64,
    /// The positions among the newest `feed::FEED_RECENT` before `feed_start` that existed then: the others
    /// may belong to transactions that were still committing, and are watched.
    pub feed_recent: Vec<i64>,
}

/// A node whose wall clock is this many seconds off the database's says so at start.
const WALL_OFFSET_WARNING: i64 = 2;

impl App {
    /// Connects, migrates, runs first start if needed, loads keys and the registry, and builds the services.
    pub async fn open(config: &Config, clock: Clock) -> anyhow::Result<(App, Option<FirstStart>)> {
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
        crate::clock::first_sample(&clock, &store).await?;
        let off = clock.wall_offset();
        if off.abs() >= WALL_OFFSET_WARNING {
            tracing::warn!(
                seconds = off,
                "this machine's clock differs from the database's; Keyward uses the database's"
            );
        }
        let first = first_start::bootstrap(&store, &master, clock.now()).await?;
        first_start::declare_resources(&store, config, clock.now()).await?;
        // The feed position is read before the state, so whatever changes while loading is replayed after.
        let feed_start = store.changes_head().await?;
        let feed_recent = store
            .changes_present_after(feed_start - crate::feed::FEED_RECENT)
            .await?;
        // Keys stay published while any token they signed can live: a resource may still have a lifetime
        // set before max_access_token_ttl was lowered.
        let longest = store
            .resources_all()
            .await?
            .iter()
            .map(|r| r.access_token_ttl)
            .max()
            .unwrap_or(0);
        let max_ttl = config.max_access_token_ttl.max(longest);
        let keys = Arc::new(KeyRing::load(&store.keys_all().await?, &master, max_ttl)?);
        let registry = Arc::new(Registry::load(&store).await?);
        let metrics = Arc::new(Metrics::new(config.metrics_client_labels));
        let (refused, lease_failures) = metrics.limit_counters();
        let limits = Arc::new(Limits::new(
            config.limits.clone(),
            store.engine() == "postgres",
            refused,
            lease_failures,
        ));
        let memory = Arc::new(Memory::new(
            registry.clone(),
            keys.clone(),
            master.clone(),
            store.clone(),
        ));
        let usage = Arc::new(Usage::default());
        let feed = Arc::new(FeedHealth::default());
        let settings = Arc::new(Settings {
            issuer: config.issuer.clone(),
            jwks_max_age: config.jwks_max_age,
            secure_cookies: config.issuer.starts_with("https://"),
            token_endpoints: config
                .token_endpoints
                .iter()
                .cloned()
                .map(Arc::new)
                .collect(),
            timeouts: config.timeouts,
            usage_flush_interval: config.usage_flush_interval,
            audit_retention: config.audit_retention,
            stale_while_unreachable: config.stale_while_unreachable,
            node_id: crate::crypto::random_id("node_"),
            feed_start,
            feed_recent,
        });
        let delegated = Arc::new(Delegated {
            store: store.clone(),
            registry: registry.clone(),
            keys: keys.clone(),
            master: master.clone(),
            clock: clock.clone(),
            issuer: config.issuer.clone(),
            code_ttl: config.authorization_code_ttl,
            refresh_token_ttl: config.refresh_token_ttl,
            refresh_token_idle_ttl: config.refresh_token_idle_ttl,
        });
        let issuer = Arc::new(Issuer {
            store: store.clone(),
            registry: registry.clone(),
            keys: keys.clone(),
            master: master.clone(),
            limits: limits.clone(),
            usage: usage.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            feed: feed.clone(),
            issuer: config.issuer.clone(),
            stale_while_unreachable: config.stale_while_unreachable,
            delegated: delegated.clone(),
        });
        let admin = Arc::new(Admin {
            store: store.clone(),
            master: master.clone(),
            clock: clock.clone(),
            memory: memory.clone(),
            max_access_token_ttl: config.max_access_token_ttl,
            key_publish_delay: config.key_publish_delay,
            default_client_resource: config.default_client_resource.clone(),
            usage: usage.clone(),
        });
        let app = App {
            accounts: Arc::new(Accounts {
                store: store.clone(),
                clock: clock.clone(),
                memory: memory.clone(),
                delegated: delegated.clone(),
            }),
            sessions: Arc::new(Sessions {
                store: store.clone(),
                master: master.clone(),
                clock: clock.clone(),
                session_ttl: config.session_ttl,
            }),
            consents: Arc::new(Consents {
                store: store.clone(),
                registry: registry.clone(),
                clock: clock.clone(),
                delegated: delegated.clone(),
            }),
            api_keys: Arc::new(ApiKeys {
                admin: admin.clone(),
                store: store.clone(),
                registry: registry.clone(),
            }),
            issuer,
            delegated,
            admin,
            store,
            memory,
            master,
            clock,
            metrics,
            limits,
            usage,
            feed,
            settings,
        };
        app.metrics.database_up.set(1.0);
        Ok((app, first))
    }
}

/// Each router takes the service it uses from the state.
macro_rules! substate {
    ($($field:ident: $ty:ty),* $(,)?) => {$(
        impl FromRef<App> for Arc<$ty> {
            fn from_ref(app: &App) -> Self {
                app.$field.clone()
            }
        }
    )*};
}

substate!(
    issuer: Issuer,
    delegated: Delegated,
    admin: Admin,
    accounts: Accounts,
    sessions: Sessions,
    consents: Consents,
    api_keys: ApiKeys,
    settings: Settings,
    metrics: Metrics,
);

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
