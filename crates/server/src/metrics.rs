//! Prometheus metrics: one recorder per node (`App`) (several apps share a test process, so nothing is global), with
//! handles registered once at start and bumped on the paths that count. Served as text on `--metrics-listen`.
//! Every label has a bounded set of values: endpoints and outcomes are fixed lists, and only the first
//! `metrics_client_labels` clients that get a token have a `client` label of their own.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use keyward_core::client::GrantType;
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::limits::Limit;
use crate::registry::CachedClient;
use crate::store::Expiring;

/// Request latency buckets, seconds: a token is typically well under a millisecond, a login a hash's worth.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A request's labels: endpoint, grant, outcome.
type RequestKey = (&'static str, &'static str, &'static str);

thread_local! {
    /// The last request's labels and handles on this thread, with the `Metrics` they belong to.
    static LAST_REQUEST: std::cell::RefCell<Option<(u64, RequestKey, Counter, Histogram)>> =
        const { std::cell::RefCell::new(None) };
}

/// Labels compared by address first (the same literals), then by text.
fn same(a: &RequestKey, b: &RequestKey) -> bool {
    let eq = |x: &str, y: &str| std::ptr::eq(x, y) || x == y;
    eq(a.0, b.0) && eq(a.1, b.1) && eq(a.2, b.2)
}

/// Tells one `Metrics` from another (several apps share a test process).
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The `client` label of the clients past the labelled ones.
pub const OTHER_CLIENTS: &str = "_other";

/// Every metric Keyward records.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Rows deleted by the purge, per kind of `Expiring::ALL`.
    pub purged_rows: [Counter; Expiring::ALL.len()],
    /// Purge rounds this node ran while holding the lease.
    pub purge_runs: Counter,
    /// 1 while this node holds the purge lease.
    pub purge_lease_held: Gauge,
    /// 1 while the last read of the change feed succeeded.
    pub database_up: Gauge,
    /// Seconds since the change feed was last read successfully (set when scraped).
    pub feed_age_seconds: Gauge,
    /// Change-feed entries applied to memory.
    pub feed_applied: Counter,
    /// Attempts to apply a change-feed entry that failed (each is tried again on the next read).
    pub feed_apply_failures: Counter,
    /// PostgreSQL notifications received on the change channel.
    pub feed_notifications: Counter,
    /// Tokens issued while the database was unreachable (from the clients held in memory).
    pub stale_tokens: Counter,
    /// Client lookups answered from memory, from the database, and for ids that do not exist.
    pub client_lookups: [Counter; 3],
    /// Clients with a `client` label of their own.
    labelled: Mutex<HashSet<String>>,
    /// The request counter and latency histogram of each endpoint, grant and outcome seen, made once: making a
    /// handle allocates its labels and looks it up, which a request should not pay for.
    requests: RwLock<HashMap<RequestKey, (Counter, Histogram)>>,
    /// This recorder's number, for the per-thread cache of request handles.
    id: u64,
    /// How many may have one.
    client_labels: usize,
}

/// Where a client lookup was answered (the `result` label of `keyward_client_lookups_total`).
#[derive(Debug, Clone, Copy)]
pub enum Lookup {
    /// From the clients held in memory.
    Memory = 0,
    /// From the database (before the registry has loaded).
    Database = 1,
    /// No such client.
    Unknown = 2,
}

impl Metrics {
    /// A recorder of its own, with every metric registered and described; `client_labels` clients get a label
    /// of their own on `keyward_tokens_issued_total`.
    pub fn new(client_labels: usize) -> Self {
        let recorder: PrometheusRecorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("keyward_request_duration_seconds".into()),
                &LATENCY_BUCKETS,
            )
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let metrics = metrics::with_local_recorder(&recorder, || {
            describe();
            Parts {
                purged_rows: Expiring::ALL.map(
                    |kind| metrics::counter!("keyward_purged_rows_total", "table" => kind.table()),
                ),
                purge_runs: metrics::counter!("keyward_purge_runs_total"),
                purge_lease_held: metrics::gauge!("keyward_purge_lease_held"),
                database_up: metrics::gauge!("keyward_database_up"),
                feed_age_seconds: metrics::gauge!("keyward_feed_age_seconds"),
                feed_applied: metrics::counter!("keyward_feed_applied_total"),
                feed_apply_failures: metrics::counter!("keyward_feed_apply_failures_total"),
                feed_notifications: metrics::counter!("keyward_feed_notifications_total"),
                stale_tokens: metrics::counter!("keyward_stale_tokens_total"),
                client_lookups: ["memory", "database", "unknown"]
                    .map(|r| metrics::counter!("keyward_client_lookups_total", "result" => r)),
            }
        });
        Metrics {
            recorder,
            handle,
            purged_rows: metrics.purged_rows,
            purge_runs: metrics.purge_runs,
            purge_lease_held: metrics.purge_lease_held,
            database_up: metrics.database_up,
            feed_age_seconds: metrics.feed_age_seconds,
            feed_applied: metrics.feed_applied,
            feed_apply_failures: metrics.feed_apply_failures,
            feed_notifications: metrics.feed_notifications,
            stale_tokens: metrics.stale_tokens,
            client_lookups: metrics.client_lookups,
            labelled: Mutex::default(),
            requests: RwLock::default(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            client_labels,
        }
    }

    /// The rejection counters of the limits, in `Limit::ALL` order, and the counter of failed leases.
    pub fn limit_counters(&self) -> ([Counter; 10], Counter) {
        metrics::with_local_recorder(&self.recorder, || {
            (
                Limit::ALL
                    .map(|l| metrics::counter!("keyward_rate_limited_total", "limit" => l.label())),
                metrics::counter!("keyward_limit_lease_failures_total"),
            )
        })
    }

    /// Counts one answered request: `endpoint` and `outcome` (`ok` or the error code) from fixed lists, `grant`
    /// on the token endpoint.
    pub fn request(
        &self,
        endpoint: &'static str,
        grant: &'static str,
        outcome: &'static str,
        seconds: f64,
    ) {
        let key = (endpoint, grant, outcome);
        // Most requests in a row share their labels: the handles of the last one are kept per thread, so the
        // common case takes no lock and hashes nothing.
        let counted = LAST_REQUEST.with(|last| match &*last.borrow() {
            Some((owner, k, counter, histogram)) if *owner == self.id && same(k, &key) => {
                counter.increment(1);
                histogram.record(seconds);
                true
            }
            _ => false,
        });
        if counted {
            return;
        }
        let known = self
            .requests
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let (counter, histogram) = known.unwrap_or_else(|| {
            let made = metrics::with_local_recorder(&self.recorder, || {
                (
                    metrics::counter!("keyward_requests_total", "endpoint" => endpoint, "grant" => grant, "outcome" => outcome),
                    metrics::histogram!("keyward_request_duration_seconds", "endpoint" => endpoint),
                )
            });
            self.requests
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, made.clone());
            made
        });
        LAST_REQUEST.with(|last| {
            *last.borrow_mut() = Some((self.id, key, counter.clone(), histogram.clone()));
        });
        counter.increment(1);
        histogram.record(seconds);
    }

    /// Counts a token issued to `client`. The client's counters are made once per cached client: the first
    /// `client_labels` clients get their own label, the rest share `_other`.
    pub fn token_issued(&self, client: &CachedClient, grant: GrantType) {
        let counters = client.issued.get_or_init(|| {
            let id = &client.client.id;
            let label = {
                let mut labelled = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
                if labelled.contains(id) || labelled.len() < self.client_labels {
                    labelled.insert(id.clone());
                    id.clone()
                } else {
                    OTHER_CLIENTS.to_owned()
                }
            };
            metrics::with_local_recorder(&self.recorder, || {
                [
                    GrantType::ClientCredentials,
                    GrantType::AuthorizationCode,
                    GrantType::RefreshToken,
                ]
                .map(|g| {
                    metrics::counter!("keyward_tokens_issued_total", "client" => label.clone(), "grant" => g.as_str())
                })
            })
        });
        let i = match grant {
            GrantType::ClientCredentials => 0,
            GrantType::AuthorizationCode => 1,
            GrantType::RefreshToken => 2,
        };
        counters[i].increment(1);
    }

    /// Sets a gauge by name and labels (values read when scraped).
    pub(crate) fn set(&self, name: &'static str, labels: &[(&'static str, String)], value: f64) {
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, v.clone()))
            .collect();
        metrics::with_local_recorder(&self.recorder, || {
            metrics::gauge!(name, labels).set(value);
        });
    }

    /// Drains the histograms' recorded samples into their buckets. A recorder built without the exporter's own
    /// upkeep task keeps every sample until this runs: housekeeping calls it every few seconds, so memory stays flat
    /// when nothing scrapes.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// The handles `Metrics::new` registers, made inside the recorder's scope.
struct Parts {
    purged_rows: [Counter; Expiring::ALL.len()],
    purge_runs: Counter,
    purge_lease_held: Gauge,
    database_up: Gauge,
    feed_age_seconds: Gauge,
    feed_applied: Counter,
    feed_apply_failures: Counter,
    feed_notifications: Counter,
    stale_tokens: Counter,
    client_lookups: [Counter; 3],
}

fn describe() {
    metrics::describe_counter!(
        "keyward_purged_rows_total",
        "Expired rows deleted by the purge, by table"
    );
    metrics::describe_gauge!(
        "keyward_purge_lease_held",
        "1 while this node holds the purge lease"
    );
    metrics::describe_gauge!(
        "keyward_database_up",
        "1 while the last read of the change feed succeeded"
    );
    metrics::describe_gauge!(
        "keyward_feed_age_seconds",
        "Seconds since this node last read the change feed"
    );
    metrics::describe_counter!(
        "keyward_feed_apply_failures_total",
        "Attempts to apply a change-feed entry to memory that failed (retried on the next read)"
    );
    metrics::describe_counter!(
        "keyward_stale_tokens_total",
        "Tokens issued from memory while the database was unreachable"
    );
    metrics::describe_counter!(
        "keyward_requests_total",
        "Answered requests by endpoint, grant type (token endpoint) and outcome (ok or the error code)"
    );
    metrics::describe_histogram!(
        "keyward_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from a request's arrival to its answer, by endpoint"
    );
    metrics::describe_counter!(
        "keyward_tokens_issued_total",
        "Tokens issued by client (the first metrics_client_labels clients; the rest as _other) and grant type"
    );
    metrics::describe_counter!(
        "keyward_rate_limited_total",
        "Requests refused by a rate limit, quota or failed-authentication limit, by limit"
    );
    metrics::describe_counter!(
        "keyward_limit_lease_failures_total",
        "Leases of shared limit allowance that failed (the node enforced its limits alone meanwhile)"
    );
    metrics::describe_counter!(
        "keyward_client_lookups_total",
        "Client lookups by where they were answered: memory, database, or unknown id"
    );
    metrics::describe_gauge!(
        "keyward_db_pool_connections",
        "Database pool connections by state (idle, busy)"
    );
    metrics::describe_gauge!(
        "keyward_limit_buckets",
        "Rate-limit and quota buckets held in memory"
    );
    metrics::describe_gauge!(
        "keyward_signing_key_age_seconds",
        "Seconds since the active signing key of each algorithm started signing"
    );
    metrics::describe_gauge!(
        "keyward_signing_keys",
        "Signing keys by state (active, pending, retiring, retired)"
    );
}
