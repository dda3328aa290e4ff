//! The wiring: takes the start-up steps (`startup`), loads what memory holds, and builds each service over the
//! shared parts it uses, those the CLI calls too through `Toolkit::build`. `App` keeps the services and those
//! shared pointers, nothing else; the routers take the service they use from it (`FromRef`). The background tasks
//! are in `follower` and `housekeeping`, serving in `serve`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;

use crate::clock::Clock;
use crate::config::{Config, TokenEndpoint};
use crate::crypto::MasterKeys;
use crate::feed::FeedHealth;
use crate::first_start::FirstStart;
use crate::keys::KeyRing;
use crate::limits::Limits;
use crate::memory::Memory;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::remote_keys::RemoteKeys;
use crate::service::dpop::DpopProofs;
use crate::service::{
    Accounts, Admin, ApiKeys, Assertions, Consents, Delegated, Issuer, Resets, SecondFactors,
    Sessions,
};
use crate::startup::{self, Started};
use crate::store::Store;
use crate::toolkit::{Held, Toolkit};
use crate::usage::Usage;

/// The services and the shared parts under them, behind one pointer: the routers' state, cloned per request.
#[derive(Clone)]
pub struct App(Arc<Parts>);

impl std::ops::Deref for App {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What `App` points to.
pub struct Parts {
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
    /// Second factors (authenticator apps, recovery codes).
    pub factors: Arc<SecondFactors>,
    /// Consents and grants.
    pub consents: Arc<Consents>,
    /// Password reset links.
    pub resets: Arc<Resets>,
    /// The SMTP transport, when `smtp_url` is set (the outbox's delivery loop runs only then).
    pub mailer: Option<Arc<crate::mail::Mailer>>,
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
    /// Whose accounts must set up a second factor before they can make keys.
    pub require_second_factor: keyward_core::account::SecondFactorPolicy,
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

impl App {
    /// Connects, migrates, runs first start if needed (`startup`), loads keys and the registry, and builds the
    /// services: those the CLI uses too over this memory (`Toolkit::build`), then the rest.
    pub async fn open(config: &Config, clock: Clock) -> anyhow::Result<(App, Option<FirstStart>)> {
        let Started {
            store,
            master,
            first,
        } = startup::open(config, &clock).await?;
        // The feed position is read before the state, so whatever changes while loading is replayed after.
        let feed_start = store.changes_head().await?;
        let feed_recent = store
            .changes_present_after(feed_start - crate::feed::FEED_RECENT)
            .await?;
        let max_ttl = startup::max_token_ttl(&store, config).await?;
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
            require_second_factor: config.require_second_factor,
        });
        let held = Held {
            registry: registry.clone(),
            keys: keys.clone(),
            memory: memory.clone(),
            usage: usage.clone(),
        };
        let Toolkit {
            delegated,
            admin,
            accounts,
            consents,
            resets,
            ..
        } = Toolkit::build(config, store.clone(), master.clone(), clock.clone(), held);
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
            assertions: Arc::new(Assertions {
                store: store.clone(),
                remote: Arc::new(RemoteKeys::new(
                    outbound_client(config)?,
                    config.outbound_private_addresses,
                )),
                audiences: assertion_audiences(config),
            }),
            dpop: Arc::new(DpopProofs {
                store: store.clone(),
                master: master.clone(),
                nonce_interval: config.dpop_nonce_interval,
            }),
        });
        let factors = Arc::new(SecondFactors {
            store: store.clone(),
            master: master.clone(),
            clock: clock.clone(),
            label: format!("Keyward ({})", config.issuer),
        });
        let app = App(Arc::new(Parts {
            sessions: Arc::new(Sessions {
                store: store.clone(),
                master: master.clone(),
                clock: clock.clone(),
                session_ttl: config.session_ttl,
                factors: factors.clone(),
            }),
            factors,
            api_keys: Arc::new(ApiKeys {
                admin: admin.clone(),
                store: store.clone(),
                registry: registry.clone(),
            }),
            issuer,
            delegated,
            admin,
            accounts,
            consents,
            resets,
            mailer: crate::mail::Mailer::from_config(config)?.map(Arc::new),
            store,
            memory,
            master,
            clock,
            metrics,
            limits,
            usage,
            feed,
            settings,
        }));
        app.metrics.database_up.set(1.0);
        Ok((app, first))
    }
}

/// The HTTPS client of Keyward's own outbound fetches (client `jwks_uri`s, federated issuers), trusting the
/// configured `extra_ca_file` beside the Mozilla roots.
fn outbound_client(config: &Config) -> anyhow::Result<keyward_client::HttpClient> {
    let extra = match &config.extra_ca_file {
        Some(path) => {
            keyward_client::read_ca_file(path).map_err(|e| anyhow::anyhow!("extra_ca_file: {e}"))?
        }
        None => Vec::new(),
    };
    Ok(keyward_client::client_trusting(&extra))
}

/// Keyward's names a client assertion's `aud` may hold (RFC 7523 §3 item 3): the issuer, and the URL of every
/// endpoint that authenticates clients (the token endpoint and its configured aliases, introspection and
/// revocation), since clients put the URL they post to.
fn assertion_audiences(config: &Config) -> Vec<String> {
    let i = &config.issuer;
    let mut names = vec![
        i.clone(),
        format!("{i}/oauth2/token"),
        format!("{i}/oauth2/introspect"),
        format!("{i}/oauth2/revoke"),
    ];
    names.extend(
        config
            .token_endpoints
            .iter()
            .map(|e| format!("{i}{}", e.path)),
    );
    names
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
    factors: SecondFactors,
    consents: Consents,
    resets: Resets,
    api_keys: ApiKeys,
    settings: Settings,
    metrics: Metrics,
);
