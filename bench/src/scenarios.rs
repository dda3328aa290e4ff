//! The targets a run measures, each adding rows to the table: the baselines, Keyward's token endpoint on both
//! engines (with the database's write counter read around the measured run), introspection, the gateway, one and
//! two server threads, many clients in the store. The agent's target is in `integrator.rs`, the peer's in
//! `peers.rs`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::load::{self, Measured, Shot};
use crate::procs::{self, Keyward, Procs};
use crate::{Options, Row};

/// Measures `shot` for the run's time after one second of warm-up.
pub(crate) async fn measure(shot: Shot, o: &Options) -> Measured {
    load::run(warm_up(shot, o).await, o.connections, o.seconds).await
}

/// One second of load before the clock starts, so connections, caches and the allocator settle.
async fn warm_up(shot: Shot, o: &Options) -> Arc<Vec<Shot>> {
    let shots = Arc::new(vec![shot]);
    load::run(shots.clone(), o.connections, 1.0).await;
    shots
}

/// Measures `shot` against `kw` and counts the database writes made during the measured part.
async fn measure_writes(shot: Shot, o: &Options, kw: &Keyward) -> anyhow::Result<(Measured, i64)> {
    let shots = warm_up(shot, o).await;
    let mut counter = kw.write_counter().await?;
    let before = counter.read().await?;
    let m = load::run(shots, o.connections, o.seconds).await;
    Ok((m, counter.read().await? - before))
}

/// Measures `shot` against `kw` and `beside` (a reference) in alternating one-second slices, the writes counted
/// around the whole: the ratio of the two is then untouched by whatever else the shared machine does meanwhile.
async fn measure_beside(
    shot: Shot,
    beside: Shot,
    o: &Options,
    kw: &Keyward,
) -> anyhow::Result<(Measured, i64, Measured)> {
    let beside = warm_up(beside, o).await;
    let shots = warm_up(shot, o).await;
    let mut counter = kw.write_counter().await?;
    let before = counter.read().await?;
    let (m, b) = load::run_alternating(shots, beside, o.connections, o.seconds, 1.0).await;
    Ok((m, counter.read().await? - before, b))
}

/// Measures `shot` and `beside` (a reference) in alternating one-second slices, each warmed up first: (shot's,
/// reference's).
pub(crate) async fn alternating(shot: Shot, beside: Shot, o: &Options) -> (Measured, Measured) {
    let beside = warm_up(beside, o).await;
    let shots = warm_up(shot, o).await;
    load::run_alternating(shots, beside, o.connections, o.seconds, 1.0).await
}

/// A reference measured beside a target: its row's name, its request, its process.
struct Reference {
    label: &'static str,
    shot: Shot,
    pid: u32,
}

/// A token target's row, with the database writes counted around it: measured beside `reference` in alternating
/// slices when there is one (whose row is pushed first, and which the ratio is against), else alone against `sign`.
async fn token_row(
    o: &Options,
    rows: &mut Vec<Row>,
    kw: &Keyward,
    target: String,
    shot: Shot,
    reference: Option<Reference>,
    sign: Option<f64>,
) -> anyhow::Result<Row> {
    let (mut row, writes) = match reference {
        Some(r) => {
            let (m, writes, b) = measure_beside(shot, r.shot, o, kw).await?;
            let row = Row::new(target, m, procs::peak_rss_mib(kw.pid)).beside(
                rows,
                format!("  {}, alternating", r.label),
                b,
                procs::peak_rss_mib(r.pid),
            );
            (row, writes)
        }
        None => {
            let (m, writes) = measure_writes(shot, o, kw).await?;
            (
                Row::new(target, m, procs::peak_rss_mib(kw.pid)).against(sign),
                writes,
            )
        }
    };
    row.writes = Some(writes);
    Ok(row)
}

/// A fresh baseline-sign, its shot and pid, to measure beside a target.
async fn sign_beside(procs: &mut Procs) -> anyhow::Result<(Shot, u32)> {
    let (pid, base) = procs.baseline("sign").await?;
    let basic =
        keyward_core::basic::encode(crate::baseline::CLIENT_ID, crate::baseline::CLIENT_SECRET);
    Ok((
        token_shot(&base, "/token").header("authorization", basic),
        pid,
    ))
}

/// A fresh one-client Keyward (SQLite, ES256) as keyward-cc measures it, to measure beside a target.
pub(crate) async fn keyward_cc_beside(
    o: &Options,
    procs: &mut Procs,
) -> anyhow::Result<(Shot, Keyward)> {
    let kw = Keyward::start(procs, &o.bin_dir, None, None).await?;
    let shot = one_client_shot(&kw, "ES256").await?;
    Ok((shot, kw))
}

/// A token request of a new client of `kw` whose resource signs with `alg`, the one-client run of keyward-cc. The
/// secret's first use is written down (once an hour at most); this waits for it so it falls outside what follows.
async fn one_client_shot(kw: &Keyward, alg: &str) -> anyhow::Result<Shot> {
    let (id, secret) = kw.client_for(alg).await?;
    kw.token(&id, &secret).await?;
    kw.wait_last_used(&id).await?;
    Ok(token_shot(&kw.base, "/oauth2/token")
        .header("authorization", keyward_core::basic::encode(&id, &secret)))
}

pub(crate) fn token_shot(base: &str, path: &str) -> Shot {
    Shot::post_form(format!("{base}{path}"), "grant_type=client_credentials")
}

/// `baseline-hello` and `baseline-sign`; returns baseline-sign's rate.
pub(crate) async fn baselines(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
) -> anyhow::Result<f64> {
    let basic =
        keyward_core::basic::encode(crate::baseline::CLIENT_ID, crate::baseline::CLIENT_SECRET);
    let mut hello_rps = None;
    let mut sign_rps = 0.0;
    for which in ["hello", "sign"] {
        let (pid, base) = procs.baseline(which).await?;
        let m = measure(
            token_shot(&base, "/token").header("authorization", basic.clone()),
            o,
        )
        .await;
        rows.push(
            Row::new(format!("baseline-{which}"), m, procs::peak_rss_mib(pid))
                .against(hello_rps.filter(|_| which == "sign")),
        );
        match which {
            "hello" => hello_rps = Some(m.rps),
            _ => sign_rps = m.rps,
        }
        procs.stop(pid);
    }
    Ok(sign_rps)
}

/// `keyward-cc` on one engine: ES256, EdDSA, RS256, each with the write counter around it.
pub(crate) async fn keyward_cc(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
    database: Option<String>,
    engine: &str,
    sign: Option<f64>,
) -> anyhow::Result<()> {
    let kw = Keyward::start(procs, &o.bin_dir, database, None).await?;
    for alg in ["ES256", "EdDSA", "RS256"] {
        let shot = one_client_shot(&kw, alg).await?;
        let target = format!("keyward-cc-{engine} {alg}");
        // The goal's ratio: measured against baseline-sign in alternating slices.
        let reference = match alg {
            "ES256" if sign.is_some() => {
                let (shot, pid) = sign_beside(procs).await?;
                Some(Reference {
                    label: "baseline-sign",
                    shot,
                    pid,
                })
            }
            _ => None,
        };
        let stop = reference.as_ref().map(|r| r.pid);
        let row = token_row(o, rows, &kw, target, shot, reference, sign).await?;
        if let Some(pid) = stop {
            procs.stop(pid);
        }
        rows.push(row);
    }
    procs.stop(kw.pid);
    Ok(())
}

/// Every limit on, high enough that none refuses: rates per client and per address, hourly and daily quotas (the
/// failed-authentication limits are on by default in both runs).
const LIMITS_ON: [(&str, &str); 4] = [
    ("KEYWARD_RATE_LIMIT_TOKEN_CLIENT", "1000000/s"),
    ("KEYWARD_RATE_LIMIT_TOKEN_ADDRESS", "1000000/s"),
    ("KEYWARD_QUOTA_TOKENS_PER_HOUR", "1000000000"),
    ("KEYWARD_QUOTA_TOKENS_PER_DAY", "1000000000"),
];

/// `keyward-cc` ES256 with every limit on, beside the same deployment without them in alternating slices: on
/// SQLite (rates counted per node, quotas leased from the database) and on PostgreSQL (rates and quotas leased).
pub(crate) async fn limits(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    for engine in ["sqlite", "pg"] {
        let (plain_db, limited_db) = match engine {
            "pg" => (
                Some(procs.postgres_database()?),
                Some(procs.postgres_database()?),
            ),
            _ => (None, None),
        };
        let plain = Keyward::start(procs, &o.bin_dir, plain_db, None).await?;
        let mut launch = crate::procs::Launch::fresh(procs, limited_db, None);
        launch.env = LIMITS_ON
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        let limited = Keyward::launch(procs, &o.bin_dir, launch).await?;
        let plain_shot = one_client_shot(&plain, "ES256").await?;
        let shot = one_client_shot(&limited, "ES256").await?;
        let reference = Reference {
            label: match engine {
                "pg" => "keyward-cc-pg ES256, limits off",
                _ => "keyward-cc-sqlite ES256, limits off",
            },
            shot: plain_shot,
            pid: plain.pid,
        };
        let target = format!("keyward-cc-{engine} ES256, limits on");
        let row = token_row(o, rows, &limited, target, shot, Some(reference), None).await?;
        rows.push(row);
        procs.stop(plain.pid);
        procs.stop(limited.pid);
    }
    Ok(())
}

/// `keyward-introspect`: introspection of an ES256 token by the client it was issued to.
pub(crate) async fn introspect(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
    sign: Option<f64>,
) -> anyhow::Result<()> {
    let kw = Keyward::start(procs, &o.bin_dir, None, None).await?;
    let shot = introspect_shot(&kw).await?;
    let m = measure(shot, o).await;
    rows.push(
        Row::new(
            "keyward-introspect ES256".into(),
            m,
            procs::peak_rss_mib(kw.pid),
        )
        .against(sign),
    );
    procs.stop(kw.pid);
    Ok(())
}

/// An introspection of an ES256 token by the client it was issued to.
async fn introspect_shot(kw: &Keyward) -> anyhow::Result<Shot> {
    let (id, secret) = kw.client_for("ES256").await?;
    let token = kw.token(&id, &secret).await?;
    Ok(Shot::post_form(
        format!("{}/oauth2/introspect", kw.base),
        &format!("token={token}"),
    )
    .header("authorization", keyward_core::basic::encode(&id, &secret)))
}

/// How many expired denylist rows `purge` starts with: three purge rounds' worth.
const EXPIRED_ROWS: u32 = 300_000;

/// `purge`: introspection on PostgreSQL (a denylist read per request) while the purge deletes expired denylist
/// rows, against the same load while it does not. The load runs in one-second slices; each slice counts as
/// "purging" when the denylist shrank during it, else "idle" (the purge runs one round every ten seconds).
pub(crate) async fn purge(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let database = procs.postgres_database()?;
    let kw = Keyward::start(procs, &o.bin_dir, Some(database.clone()), None).await?;
    let shots = warm_up(introspect_shot(&kw).await?, o).await;
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(&database).await?;
    sqlx::query(&format!(
        "INSERT INTO revoked_tokens (jti, expires_at) SELECT 'expired-' || g, 0 FROM generate_series(1, {EXPIRED_ROWS}) g"
    ))
    .execute(&mut db)
    .await?;
    let mut count = async || -> anyhow::Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM revoked_tokens")
            .fetch_one(&mut db)
            .await?;
        Ok(n)
    };
    let (mut purging, mut idle) = (load::Raw::default(), load::Raw::default());
    let (mut purging_slices, mut idle_slices) = (0, 0);
    let mut before = count().await?;
    // Long enough for three rounds, and for idle slices between and after them.
    for _ in 0..40 {
        let slice = load::run_raw(shots.clone(), o.connections, 1.0).await;
        let after = count().await?;
        if after < before {
            purging.add(slice);
            purging_slices += 1;
        } else {
            idle.add(slice);
            idle_slices += 1;
        }
        before = after;
        if after == 0 && idle_slices >= 8 {
            break;
        }
    }
    if purging_slices == 0 || idle_slices == 0 {
        bail!("the purge was not seen (left: {before} rows)");
    }
    let rss = procs::peak_rss_mib(kw.pid);
    let row = Row::new(
        "keyward-introspect-pg, purge running".into(),
        purging.summary(),
        rss,
    )
    .beside(
        rows,
        "  keyward-introspect-pg, purge idle".into(),
        idle.summary(),
        rss,
    );
    rows.push(row);
    procs.stop(kw.pid);
    Ok(())
}

/// The gateway in front of orders-api, against orders-api alone.
pub(crate) async fn gateway(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let kw = Keyward::start(procs, &o.bin_dir, None, None).await?;
    let (id, secret) = kw.client_for("ES256").await?;
    let token = kw.token(&id, &secret).await?;
    let (up_pid, upstream) = procs.orders_api(&o.bin_dir).await?;
    let (gw_pid, gw) = procs
        .gateway(&o.bin_dir, &upstream, &kw.base, &o.gateway_log_level, false)
        .await?;
    let bearer = format!("Bearer {token}");
    let direct = measure(
        Shot::get(format!("{upstream}/manage/orders/42")).header("authorization", bearer.clone()),
        o,
    )
    .await;
    rows.push(Row::new(
        "upstream (orders-api)".into(),
        direct,
        procs::peak_rss_mib(up_pid),
    ));
    let through = measure(
        Shot::get(format!("{gw}/manage/orders/42")).header("authorization", bearer),
        o,
    )
    .await;
    rows.push(
        Row::new(
            format!("gateway (log {})", o.gateway_log_level),
            through,
            procs::peak_rss_mib(gw_pid),
        )
        .against(Some(direct.rps)),
    );
    for pid in [gw_pid, up_pid, kw.pid] {
        procs.stop(pid);
    }
    Ok(())
}

/// `keyward-cc` ES256 on SQLite with one, then two server threads.
pub(crate) async fn scaling(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
    sign: Option<f64>,
) -> anyhow::Result<()> {
    for threads in [1, 2] {
        let kw = Keyward::start(procs, &o.bin_dir, None, Some(threads)).await?;
        let (id, secret) = kw.client_for("ES256").await?;
        let shot = token_shot(&kw.base, "/oauth2/token")
            .header("authorization", keyward_core::basic::encode(&id, &secret));
        let m = measure(shot, o).await;
        rows.push(
            Row::new(
                format!("keyward-cc ES256 {threads} thread(s)"),
                m,
                procs::peak_rss_mib(kw.pid),
            )
            .against(sign),
        );
        procs.stop(kw.pid);
    }
    Ok(())
}

/// `cluster`: one Keyward node on PostgreSQL against two on the same database, the load's connections spread
/// over both, measured in alternating slices (the second node idles during the one-node slices). On this
/// two-core machine the nodes and the load generator share the cores, so the ratio shows what a second node costs
/// or gains here, not what a second machine would add.
pub(crate) async fn cluster(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let database = procs.postgres_database()?;
    let one = Keyward::start(procs, &o.bin_dir, Some(database), None).await?;
    let mut launch = one.relaunch(None);
    // The second node: its own directory with the same master key, the same database, no first start.
    launch.data = one.data.with_file_name(format!(
        "{}-node2",
        one.data
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("keyward")
    ));
    std::fs::create_dir_all(&launch.data)?;
    std::fs::copy(
        one.data.join("keyward.secret"),
        launch.data.join("keyward.secret"),
    )?;
    let two = Keyward::launch(procs, &o.bin_dir, launch).await?;
    let (id, secret) = one.client_for("ES256").await?;
    one.token(&id, &secret).await?;
    one.wait_last_used(&id).await?;
    // The client reaches the second node through the change feed.
    two.token(&id, &secret).await?;
    let basic = keyward_core::basic::encode(&id, &secret);
    let shot =
        |kw: &Keyward| token_shot(&kw.base, "/oauth2/token").header("authorization", basic.clone());
    let single = warm_up(shot(&one), o).await;
    let both = Arc::new(vec![shot(&one), shot(&two)]);
    load::run(both.clone(), o.connections, 1.0).await;
    let (m2, m1) = load::run_alternating(both, single, o.connections, o.seconds, 1.0).await;
    let rss = procs::peak_rss_mib(one.pid);
    let row = Row::new(
        "keyward-cc-pg ES256 two nodes".into(),
        m2,
        rss + procs::peak_rss_mib(two.pid),
    )
    .beside(
        rows,
        "  keyward-cc-pg ES256 one node, alternating".into(),
        m1,
        rss,
    );
    rows.push(row);
    procs.stop(two.pid);
    procs.stop(one.pid);
    Ok(())
}

/// Writes an import file of `n` clients allowed `https://bench.api`; returns their `Authorization` values.
fn import_file(path: &Path, n: usize) -> anyhow::Result<Vec<String>> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut auth = Vec::with_capacity(n);
    for i in 0..n {
        let (id, secret) = (format!("bench-{i:07}"), format!("kw-bench-secret-{i:07}-x"));
        writeln!(
            f,
            r#"{{"client_id":"{id}","name":"bench {i}","client_secret":"{secret}","resources":["https://bench.api"]}}"#
        )?;
        auth.push(format!("Basic {}", B64.encode(format!("{id}:{secret}"))));
    }
    f.flush()?;
    Ok(auth)
}

/// What a many-clients run found besides its rows.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StartUp {
    pub(crate) clients: usize,
    pub(crate) import: Duration,
    /// From spawning `keyward serve` to its first token for a random imported client.
    pub(crate) first_token: Duration,
    /// From spawning to every client in memory.
    pub(crate) all_in_memory: Duration,
}

/// `keyward-cc` with `n` clients in the store (imported), on SQLite: requests spread over the first `spreads`
/// of them. Measures start-up with them all in the store.
pub(crate) async fn many_clients(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
    n: usize,
    spreads: &[usize],
    sign: Option<f64>,
) -> anyhow::Result<StartUp> {
    let kw = Keyward::start(procs, &o.bin_dir, None, None).await?;
    kw.resource_for("ES256").await?;
    let relaunch = kw.relaunch(None);
    procs.stop(kw.pid);
    let file = procs.dir().join(format!("clients-{n}.jsonl"));
    let auth = import_file(&file, n)?;
    let import = kw.import(&o.bin_dir, &file)?;
    let _ = std::fs::remove_file(&file);

    let spawned = Instant::now();
    let kw = Keyward::launch(procs, &o.bin_dir, relaunch).await?;
    // Keyward::launch returned after an admin token; now the first token of an imported client.
    let pick = auth[n / 2].clone();
    loop {
        let shot = token_shot(&kw.base, "/oauth2/token").header("authorization", pick.clone());
        if load::once(&shot).await {
            break;
        }
        if spawned.elapsed() > Duration::from_secs(60) {
            bail!("no token for an imported client 60 s after start");
        }
    }
    let first_token = spawned.elapsed();
    while !kw.clients_in_memory().await? {
        if spawned.elapsed() > Duration::from_secs(300) {
            bail!("clients not in memory 300 s after start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_in_memory = spawned.elapsed();
    let auth = Arc::new(auth);
    // With a million clients, each spread is measured beside a one-client Keyward (keyward-cc), in alternating
    // slices: the goal compares the two.
    let one = if n >= 1_000_000 {
        Some(keyward_cc_beside(o, procs).await?)
    } else {
        None
    };
    for &spread in spreads {
        let values = Arc::new(auth[..spread.min(auth.len())].to_vec());
        let shot = token_shot(&kw.base, "/oauth2/token").spread_auth(values);
        let target = format!("keyward-cc-{} over {}", count_label(n), count_label(spread));
        // Writes are counted here too: each secret's first use in the hour is written down (paced).
        let reference = one.as_ref().map(|(shot, one_kw)| Reference {
            label: "keyward-cc-sqlite ES256",
            shot: shot.clone(),
            pid: one_kw.pid,
        });
        let row = token_row(o, rows, &kw, target, shot, reference, sign).await?;
        rows.push(row);
    }
    if let Some((_, one_kw)) = one {
        procs.stop(one_kw.pid);
    }
    procs.stop(kw.pid);
    Ok(StartUp {
        clients: n,
        import,
        first_token,
        all_in_memory,
    })
}

/// `10k`, `1m`, or the number.
pub(crate) fn count_label(n: usize) -> String {
    match n {
        1_000_000 => "1m".into(),
        n if n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}
