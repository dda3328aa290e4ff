//! The running application: opening the store, first start, the shared state handlers use, the background
//! tasks (change feed, last-used flush, purges) and serving HTTP until shutdown.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::client::{AuthMethod, GrantType};
use keyward_core::resource::{ADMIN_READ_SCOPE, ADMIN_RESOURCE, ADMIN_SCOPE, SigningAlg};
use tokio::net::TcpListener;

use crate::admin::{self, Actor, ClientInput, ResourceInput};
use crate::clock::Clock;
use crate::config::{Config, TokenEndpoint};
use crate::crypto::MasterKeys;
use crate::feed::{FeedCursor, FeedHealth, GAP_GRACE};
use crate::keys::{self, KeyRing};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::registry::{LAST_USED_PER_FLUSH, Registry};
use crate::store::{Expiring, Store, StoreError};
use crate::usage::Usage;

/// What every request handler shares.
pub struct App {
    /// The data layer.
    pub store: Store,
    /// Clients and resources in memory.
    pub registry: Registry,
    /// Signing keys in memory.
    pub keys: KeyRing,
    /// Pepper and key-encryption key.
    pub master: MasterKeys,
    /// The issuer URL.
    pub issuer: String,
    /// Where time comes from.
    pub clock: Clock,
    /// Longest access-token lifetime, seconds.
    pub max_access_token_ttl: i64,
    /// Publish-then-sign delay, seconds.
    pub key_publish_delay: i64,
    /// JWKS `max-age`, seconds.
    pub jwks_max_age: i64,
    /// The change-feed position the in-memory state was loaded at.
    pub feed_start: i64,
    /// The positions among the newest `FEED_RECENT` before `feed_start` that existed then: the others may belong
    /// to transactions that were still committing, and are watched.
    pub feed_recent: Vec<i64>,
    /// Token endpoint aliases from the configuration.
    pub token_endpoints: Vec<Arc<TokenEndpoint>>,
    /// Whether the database was reachable at the last read of the change feed, and when that was.
    pub feed: FeedHealth,
    /// How long tokens keep being issued from memory while the database is unreachable.
    pub stale_while_unreachable: Duration,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// This process's name in leases (random, per start).
    pub node_id: String,
    /// Default absolute lifetime of a delegated grant, seconds.
    pub refresh_token_ttl: i64,
    /// Login session lifetime, seconds.
    pub session_ttl: i64,
    /// Authorization code lifetime, seconds.
    pub code_ttl: i64,
    /// How long a grant may go unused before its refresh token stops working, seconds (`None`: no limit).
    pub refresh_token_idle_ttl: Option<i64>,
    /// Whether cookies are `Secure` (the issuer is https).
    pub secure_cookies: bool,
    /// Tokens issued per client per hour, not yet flushed.
    pub usage: Usage,
    /// How often `usage` is flushed.
    pub usage_flush_interval: Duration,
    /// Rate limits, quotas and failed-authentication limits, with their state.
    pub limits: Limits,
    /// How long audit entries are kept, seconds.
    pub audit_retention: i64,
    /// The resource a new client gets when its registration names none.
    pub default_client_resource: Option<String>,
    /// How long a connection may take over a request, sit idle, or leave a response unread.
    pub timeouts: crate::conn::Timeouts,
}

/// The admin client created on first start; its secret is shown once.
#[derive(Debug)]
pub struct FirstStart {
    /// Admin client id.
    pub client_id: String,
    /// Admin client secret.
    pub client_secret: String,
}

impl App {
    /// Connects, migrates, runs first start if needed, and loads keys and the registry.
    pub async fn open(
        config: &Config,
        clock: Clock,
    ) -> anyhow::Result<(Arc<App>, Option<FirstStart>)> {
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
        let master = MasterKeys::derive(&master_key)?;
        // Everything the cluster shares is timed by the database's clock, from the first write on.
        crate::clock::first_sample(&clock, &store).await?;
        let off = clock.wall_offset();
        if off.abs() >= WALL_OFFSET_WARNING {
            tracing::warn!(
                seconds = off,
                "this machine's clock differs from the database's; Keyward uses the database's"
            );
        }
        let first = bootstrap(&store, &master, clock.now()).await?;
        declare_resources(&store, config, clock.now()).await?;
        // The feed position is read before the state, so whatever changes while loading is replayed after.
        let feed_start = store.changes_head().await?;
        let feed_recent = store
            .changes_present_after(feed_start - FEED_RECENT)
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
        let keys = KeyRing::load(&store.keys_all().await?, &master, max_ttl)?;
        let registry = Registry::load(&store).await?;
        let metrics = Metrics::new(config.metrics_client_labels);
        let (refused, lease_failures) = metrics.limit_counters();
        let limits = Limits::new(
            config.limits.clone(),
            store.engine() == "postgres",
            refused,
            lease_failures,
        );
        let app = App {
            store,
            registry,
            keys,
            master,
            issuer: config.issuer.clone(),
            clock,
            max_access_token_ttl: config.max_access_token_ttl,
            key_publish_delay: config.key_publish_delay,
            jwks_max_age: config.jwks_max_age,
            feed_start,
            feed_recent,
            token_endpoints: config
                .token_endpoints
                .iter()
                .cloned()
                .map(Arc::new)
                .collect(),
            feed: FeedHealth::default(),
            stale_while_unreachable: config.stale_while_unreachable,
            metrics,
            node_id: crate::crypto::random_id("node_"),
            refresh_token_ttl: config.refresh_token_ttl,
            session_ttl: config.session_ttl,
            code_ttl: config.authorization_code_ttl,
            refresh_token_idle_ttl: config.refresh_token_idle_ttl,
            secure_cookies: config.issuer.starts_with("https://"),
            usage: Usage::default(),
            usage_flush_interval: config.usage_flush_interval,
            limits,
            audit_retention: config.audit_retention,
            default_client_resource: config.default_client_resource.clone(),
            timeouts: config.timeouts,
        };
        app.metrics.database_up.set(1.0);
        Ok((Arc::new(app), first))
    }

    /// Applies one entry of the change feed to the in-memory state, reading what changed from the request pool.
    pub async fn apply_change(&self, kind: &str, key: &str) -> anyhow::Result<()> {
        self.apply_change_from(&self.store, kind, key).await
    }

    /// Applies one entry of the change feed, reading what changed through `store` (the feed follower passes the
    /// control connections, so changes keep arriving while requests hold every pooled connection).
    async fn apply_change_from(&self, store: &Store, kind: &str, key: &str) -> anyhow::Result<()> {
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

/// A node whose wall clock is this many seconds off the database's says so at start.
const WALL_OFFSET_WARNING: i64 = 2;

/// How far back the first signing keys are made active.
const FIRST_KEYS_BACKDATED: i64 = 86_400;

/// First start: in one transaction, claims the `bootstrapped` marker, then creates the admin resource, an admin
/// client and a signing key per algorithm. Nodes starting together do it once.
async fn bootstrap(
    store: &Store,
    master: &MasterKeys,
    now: i64,
) -> anyhow::Result<Option<FirstStart>> {
    if store.meta_get("bootstrapped").await?.is_some() {
        return Ok(None);
    }
    let mut tx = store.begin().await?;
    if !tx.meta_claim("bootstrapped", &now.to_string()).await? {
        return Ok(None);
    }
    let actor = Actor::system();
    for alg in SigningAlg::ALL {
        // The first keys sign from a day back: nothing was published before them, and a node whose time is
        // behind the first node's still has a key to sign with.
        let row = keys::generate(alg, master, now, now - FIRST_KEYS_BACKDATED)?;
        tx.key_insert(&row).await?;
    }
    tx.change("key", "*", now).await?;
    let resource = ResourceInput {
        identifier: ADMIN_RESOURCE.into(),
        name: "Keyward admin API".into(),
        scopes: vec![ADMIN_SCOPE.into(), ADMIN_READ_SCOPE.into()],
        access_token_ttl: None,
        signing_alg: None,
        scope_details: None,
    };
    admin::resource_create_in(&mut tx, &actor, resource, 3_600, now)
        .await
        .map_err(anyhow::Error::msg)?;
    let client = ClientInput {
        name: Some("admin".into()),
        grant_types: Some(vec![GrantType::ClientCredentials.to_string()]),
        auth_methods: Some(AuthMethod::ALL.iter().map(ToString::to_string).collect()),
        resources: Some(vec![ADMIN_RESOURCE.into()]),
        scopes: Some(vec![ADMIN_SCOPE.into()]),
        ..ClientInput::default()
    };
    let resources = std::collections::HashMap::from([(
        ADMIN_RESOURCE.to_owned(),
        vec![ADMIN_SCOPE.to_owned(), ADMIN_READ_SCOPE.to_owned()],
    )]);
    let (view, secret) = admin::client_create_in(&mut tx, master, &actor, client, &resources, now)
        .await
        .map_err(anyhow::Error::msg)?;
    tx.commit().await?;
    Ok(Some(FirstStart {
        client_id: view.client_id,
        client_secret: secret.ok_or_else(|| anyhow::anyhow!("the admin client has no secret"))?,
    }))
}

/// Creates the resources the configuration declares and the database lacks, each in its own transaction. A
/// declared resource that exists is left as it is (the admin API may have changed it since); a difference from
/// the configuration is logged. Nodes starting together may race to create one: the loser finds it created.
async fn declare_resources(store: &Store, config: &Config, now: i64) -> anyhow::Result<()> {
    let actor = Actor::config();
    for input in &config.resources {
        match store.resource_get(&input.identifier).await {
            Ok(existing) => {
                let existing_scopes: BTreeSet<&str> = existing.scopes.split_whitespace().collect();
                let declared_scopes: BTreeSet<&str> =
                    input.scopes.iter().map(String::as_str).collect();
                let mut differs = existing.name != input.name || existing_scopes != declared_scopes;
                if let Some(alg) = &input.signing_alg {
                    differs |= !existing.signing_alg.eq_ignore_ascii_case(alg);
                }
                if let Some(ttl) = &input.access_token_ttl {
                    differs |=
                        ttl.seconds("access_token_ttl").ok() != Some(existing.access_token_ttl);
                }
                if differs {
                    tracing::warn!(
                        identifier = %input.identifier,
                        "a declared resource differs from the database; the database's version is kept"
                    );
                }
                continue;
            }
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let mut tx = store.begin().await?;
        let created = admin::resource_create_in(
            &mut tx,
            &actor,
            input.clone(),
            config.max_access_token_ttl,
            now,
        )
        .await;
        match created {
            Ok(_) => {
                tx.commit().await?;
                tracing::info!(identifier = %input.identifier, "created a declared resource");
            }
            Err(crate::error::ApiError::Plain {
                code: "conflict", ..
            }) => {}
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "declared resource {:?}: {e}",
                    input.identifier
                ));
            }
        }
    }
    Ok(())
}

/// Prints the first-start admin credentials, the only time the secret is shown.
pub fn print_first_start(first: &FirstStart) {
    let rule = "=".repeat(72);
    eprintln!(
        "\n{rule}\nKeyward first start: an admin client was created (scope {ADMIN_SCOPE}).\n\n  client_id:     {}\n  client_secret: {}\n\nThis secret is SHOWN ONCE and cannot be recovered. Store it now.\n{rule}\n",
        first.client_id, first.client_secret
    );
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

impl App {
    /// Writes up to `limit` of the last-used times noted in memory (one transaction; nothing when there are
    /// none). When the write fails they are put back for the next try. Called by housekeeping with
    /// `LAST_USED_PER_FLUSH`, and at shutdown with no limit.
    pub async fn flush_last_used(&self, limit: usize) -> Result<(), StoreError> {
        let used = self.registry.take_used(limit);
        if used.is_empty() {
            return Ok(());
        }
        let written = self.store.secrets_touch(&used).await;
        if written.is_err() {
            self.registry.put_back_used(used);
        }
        written
    }
}

/// The most feed entries read at a time.
const FEED_BATCH: usize = 1_000;

/// How many of the newest feed positions a starting node checks for gaps (transactions still committing).
const FEED_RECENT: i64 = 1_000;

/// How often a server reads the change feed on SQLite, which has no notifications.
pub const FEED_POLL: Duration = Duration::from_millis(250);

/// On PostgreSQL a notification wakes the follower at once; this catch-up read runs anyway, so a notification
/// lost with its connection delays a change by at most this long.
pub const FEED_CATCH_UP: Duration = Duration::from_millis(500);

/// The purge lease: one node of a cluster purges at a time. It lasts three purge rounds, so a node that stops
/// renewing it is replaced within 40 s (the lease, then up to one round of the next node).
const PURGE_LEASE: &str = "purge";
const PURGE_LEASE_SECONDS: i64 = 30;
/// Rows deleted per statement, and the pause between statements, so the purge never holds the database (or
/// SQLite's one writer) for long and requests get their turn between batches.
const PURGE_BATCH: i64 = 500;
const PURGE_PAUSE: Duration = Duration::from_millis(20);
/// Statements per table per round: 100,000 rows every ten seconds at most; the rest waits for the next round.
const PURGE_MAX_BATCHES: u32 = 200;
/// The longest a read of the feed may take before it counts as failed: a connection that died silently (no
/// reset, no answer) must not leave the node believing the database is up, and issuing tokens past its stale limit.
const FEED_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Loads every client into memory, retrying until it can. Serving does not wait for it: until it is done,
/// clients are read from the store one by one.
async fn load_clients(app: &App) {
    let started = std::time::Instant::now();
    loop {
        match app.registry.reload_clients(&app.store.control()).await {
            Ok(count) => {
                app.feed.ok();
                tracing::info!(
                    clients = count,
                    seconds = started.elapsed().as_secs_f64(),
                    "every client is in memory"
                );
                return;
            }
            Err(e) => {
                database_unreachable(app, &e);
                tracing::warn!(error = %e, "loading clients failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// PostgreSQL: waits on the change channel and wakes the follower for each notification, and after every
/// reconnection (notifications sent while disconnected are lost, so the follower catches up). Returns at once on
/// SQLite.
async fn listen_for_changes(app: Arc<App>, wake: Arc<tokio::sync::Notify>) {
    loop {
        let mut listener = match app.store.change_listener().await {
            None => return,
            Some(Ok(l)) => l,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "cannot listen for changes; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        wake.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => {
                    app.metrics.feed_notifications.increment(1);
                    wake.notify_one();
                }
                // The connection was lost and has been re-established: catch up.
                Ok(None) => wake.notify_one(),
                Err(e) => {
                    // Start over with a new connection rather than trust this one.
                    tracing::debug!(error = %e, "the change listener failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

/// Follows the change feed so that changes made by other processes reach this one's memory within a second:
/// on PostgreSQL woken by a notification and caught up every `FEED_CATCH_UP`, on SQLite polled every `FEED_POLL`.
/// It starts by loading every client, then reads the feed from the position taken before the load, so a change
/// made while the load ran is applied after it. Each read records whether the database answered (`App::feed`).
async fn follow_changes(app: Arc<App>) {
    load_clients(&app).await;
    let wake = Arc::new(tokio::sync::Notify::new());
    let listener = tokio::spawn(listen_for_changes(app.clone(), wake.clone()));
    let catch_up = match app.store.engine() {
        "postgres" => FEED_CATCH_UP,
        _ => FEED_POLL,
    };
    // The follower's reads use the control connections: requests holding every pooled connection must not hold
    // back the changes that concern them, nor make the database look unreachable.
    let control = app.store.control();
    let mut cursor = FeedCursor::new(
        app.feed_start,
        FEED_RECENT,
        &app.feed_recent,
        std::time::Instant::now(),
    );
    // Dropping the follower (at shutdown) stops its listener too.
    let _listener = AbortOnDrop(listener);
    loop {
        // A full batch means more is waiting: read on at once.
        if read_changes(&app, &control, &mut cursor).await {
            continue;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(catch_up) => {}
        }
    }
}

/// One read of the feed: the gaps being watched (a transaction that committed late), then the new entries in order;
/// applies each, records the database's health. Returns whether more entries are waiting.
async fn read_changes(app: &App, control: &Store, cursor: &mut FeedCursor) -> bool {
    let read = tokio::time::timeout(FEED_READ_TIMEOUT, async {
        let late = control.changes_at(&cursor.watched()).await?;
        let fresh = control
            .changes_since(cursor.after(), FEED_BATCH as i64)
            .await?;
        Ok::<_, StoreError>((late, fresh))
    })
    .await
    .unwrap_or_else(|_| Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)));
    let (late, fresh) = match read {
        Ok(read) => read,
        Err(e) => {
            database_unreachable(app, &e);
            return false;
        }
    };
    if app.feed.is_down() {
        tracing::info!("the database answers again");
    }
    app.feed.ok();
    app.metrics.database_up.set(1.0);
    let now = std::time::Instant::now();
    let caught_up = fresh.len() < FEED_BATCH;
    let todo: Vec<_> = late
        .iter()
        .chain(&fresh)
        .filter(|c| cursor.is_new(c.seq))
        .collect();
    for c in todo {
        // A watched position (a late commit, or a change that failed before) is not new to the log.
        let retrying = c.seq <= cursor.after();
        cursor.mark(c.seq, now);
        match app.apply_change_from(control, &c.kind, &c.key).await {
            Ok(()) => app.metrics.feed_applied.increment(1),
            Err(e) => {
                // Watched afresh (it exists, so it is never given up) and applied again on the next read, while
                // the changes after it go on: each change re-reads what it names, so their order does not matter,
                // and one that cannot be applied (a key that does not unseal) must not hold back the others.
                cursor.retry(c.seq, now);
                app.metrics.feed_apply_failures.increment(1);
                if !retrying {
                    tracing::warn!(error = %e, kind = %c.kind, "applying a change failed; will retry");
                }
            }
        }
    }
    cursor.expire(now, GAP_GRACE);
    // Once a read has replayed everything that changed during the load, memory is current.
    if caught_up {
        app.registry.mark_loaded();
    }
    !caught_up
}

/// Records a failed read of the database; the first of an outage is logged.
fn database_unreachable(app: &App, e: &StoreError) {
    app.metrics.database_up.set(0.0);
    if app.feed.failed() {
        tracing::warn!(
            error = %e,
            stale_limit_seconds = app.stale_while_unreachable.as_secs(),
            "the database is unreachable: requests that need it answer 503, tokens for clients in memory \
             are issued for at most stale_while_unreachable"
        );
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Writes last-used times every second (a lock and nothing more when there are none; at most
/// `LAST_USED_PER_FLUSH`, so a burst of first uses is paced), token counts every `usage_flush_interval`, and
/// every five seconds drains the metric histograms, every ten samples the database's clock, drops idle limit
/// buckets and purges expired rows if this node holds the purge lease; all off the request path.
async fn housekeeping(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let usage_every = app.usage_flush_interval.as_secs().max(1);
    for round in 0u64.. {
        tick.tick().await;
        if round % 5 == 0 {
            app.metrics.upkeep();
        }
        if let Err(e) = app.flush_last_used(LAST_USED_PER_FLUSH).await {
            tracing::warn!(error = %e, "recording last-used times failed");
        }
        if round % usage_every == 0 && round > 0 {
            if let Err(e) = app.usage.flush(&app.store).await {
                tracing::warn!(error = %e, "recording token counts failed; kept for the next flush");
            }
        }
        if round % crate::clock::SYNC_EVERY == 0 && round > 0 {
            if let Err(e) = crate::clock::sync_clock(&app.clock, &app.store.control()).await {
                tracing::debug!(error = %e, "the database's clock could not be read; kept the last sample");
            }
        }
        if round % 10 == 0 {
            app.limits.sweep(app.clock.now_micros());
            purge(&app).await;
        }
    }
}

/// One purge round: takes or renews the lease, then deletes expired rows table by table in small batches. Logged
/// when it deletes anything, counted in `keyward_purged_rows_total`.
pub async fn purge(app: &App) {
    let now = app.clock.now();
    match app
        .store
        .lease_acquire(PURGE_LEASE, &app.node_id, now, PURGE_LEASE_SECONDS)
        .await
    {
        Ok(true) => app.metrics.purge_lease_held.set(1.0),
        Ok(false) => {
            app.metrics.purge_lease_held.set(0.0);
            return;
        }
        Err(e) => {
            app.metrics.purge_lease_held.set(0.0);
            tracing::debug!(error = %e, "purge lease not taken");
            return;
        }
    }
    app.metrics.purge_runs.increment(1);
    let started = std::time::Instant::now();
    let mut deleted = [0u64; Expiring::ALL.len()];
    for (i, kind) in Expiring::ALL.into_iter().enumerate() {
        let table = kind.table();
        for _ in 0..PURGE_MAX_BATCHES {
            match app
                .store
                .purge_expired(kind, now, app.audit_retention, PURGE_BATCH)
                .await
            {
                Ok(n) => {
                    deleted[i] += n;
                    app.metrics.purged_rows[i].increment(n);
                    if n < PURGE_BATCH as u64 {
                        break;
                    }
                    tokio::time::sleep(PURGE_PAUSE).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, table, "purge failed; retried next round");
                    break;
                }
            }
        }
    }
    if deleted.iter().any(|n| *n > 0) {
        let counts: Vec<String> = Expiring::ALL
            .iter()
            .zip(deleted)
            .map(|(kind, n)| format!("{}={n}", kind.table()))
            .collect();
        tracing::info!(
            rows = %counts.join(" "),
            seconds = started.elapsed().as_secs_f64(),
            node = %app.node_id,
            "purged expired rows"
        );
    }
}

/// Serves HTTP on `listener` until `shutdown` completes; background tasks stop with it.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tasks = [
        tokio::spawn(follow_changes(app.clone())),
        tokio::spawn(housekeeping(app.clone())),
    ];
    let router = crate::http::router(app.clone());
    crate::conn::serve(listener, router, app.timeouts, shutdown).await;
    for t in tasks {
        t.abort();
    }
    // Last-used times gathered since the last flush are written before exit, and the purge lease is handed
    // back so another node takes it at once.
    if let Err(e) = app.flush_last_used(usize::MAX).await {
        tracing::warn!(error = %e, "recording last-used times at shutdown failed");
    }
    if let Err(e) = app.usage.flush(&app.store).await {
        tracing::warn!(error = %e, "recording token counts at shutdown failed");
    }
    let _ = app.store.lease_release(PURGE_LEASE, &app.node_id).await;
    Ok(())
}
