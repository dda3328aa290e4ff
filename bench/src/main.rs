//! Keyward's benchmark, run by `bash bench/run` (or `cargo run --release -p keyward-bench -- all` after a release
//! build). Each target is started as its own process on 127.0.0.1, driven by the hyper load generator in `load.rs`
//! at a fixed connection count for a fixed time, and printed in one table with its ratio to the baseline measured
//! in the same run: the machine is shared and noisy, so only ratios compare across runs.
//!
//! Targets: `baseline-hello` (HTTP limit), `baseline-sign` (form + Basic + HMAC + ES256 limit), `keyward-cc` on
//! SQLite and PostgreSQL (ES256, EdDSA, RS256), `keyward-introspect`, and `gateway` against its upstream alone.
//! Every process started is stopped at the end, however the run ends.

mod baseline;
mod load;
mod procs;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use load::{Measured, Shot};
use procs::{Keyward, Procs};

/// Unix seconds (the baseline signer's `iat`).
#[allow(clippy::disallowed_methods)] // A benchmark process, not the server: no injected clock here.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

struct Options {
    bin_dir: PathBuf,
    seconds: f64,
    connections: usize,
    targets: Vec<String>,
    gateway_log_level: String,
}

const ALL: [&str; 5] = [
    "baselines",
    "keyward-sqlite",
    "keyward-postgres",
    "introspect",
    "gateway",
];

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        bin_dir: PathBuf::from("target/release"),
        seconds: 5.0,
        connections: 32,
        targets: Vec::new(),
        gateway_log_level: "info".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--bin-dir" => o.bin_dir = value()?.into(),
            "--seconds" => o.seconds = value()?.parse()?,
            "--connections" => o.connections = value()?.parse()?,
            "--gateway-log-level" => o.gateway_log_level = value()?,
            "all" => o.targets.extend(ALL.iter().map(|s| s.to_string())),
            t if ALL.contains(&t) => o.targets.push(t.to_owned()),
            other => bail!("unknown argument {other}; targets: all, {}", ALL.join(", ")),
        }
    }
    if o.targets.is_empty() {
        o.targets.extend(ALL.iter().map(|s| s.to_string()));
    }
    Ok(o)
}

/// One row of the table.
struct Row {
    target: String,
    m: Measured,
    rss_mib: f64,
    baseline: Option<f64>,
}

fn print(rows: &[Row]) {
    println!(
        "\n{:<28} {:>10} {:>9} {:>9} {:>7} {:>9} {:>8}",
        "target", "req/s", "p50 ms", "p99 ms", "errors", "RSS MiB", "ratio"
    );
    for r in rows {
        let ratio = r
            .baseline
            .map_or_else(|| "-".to_owned(), |b| format!("{:.2}", r.m.rps / b));
        println!(
            "{:<28} {:>10.0} {:>9.2} {:>9.2} {:>7} {:>9.1} {:>8}",
            r.target,
            r.m.rps,
            r.m.p50.as_secs_f64() * 1e3,
            r.m.p99.as_secs_f64() * 1e3,
            r.m.errors,
            r.rss_mib,
            ratio
        );
    }
}

async fn measure(shot: Shot, o: &Options) -> Measured {
    let shots = Arc::new(vec![shot]);
    // Warm-up: connections, caches and the allocator settle before the clock starts.
    load::run(shots.clone(), o.connections, 1.0).await;
    load::run(shots, o.connections, o.seconds).await
}

async fn baselines(o: &Options, procs: &mut Procs, rows: &mut Vec<Row>) -> anyhow::Result<f64> {
    let basic = keyward_core::basic::encode(baseline::CLIENT_ID, baseline::CLIENT_SECRET);
    let mut sign_rps = 0.0;
    let mut hello_rps = None;
    for which in ["hello", "sign"] {
        let (pid, base) = procs.baseline(which).await?;
        let shot = Shot::post_form(format!("{base}/token"), "grant_type=client_credentials")
            .header("authorization", basic.clone());
        let m = measure(shot, o).await;
        rows.push(Row {
            target: format!("baseline-{which}"),
            m,
            rss_mib: procs::peak_rss_mib(pid),
            baseline: if which == "sign" { hello_rps } else { None },
        });
        if which == "hello" {
            hello_rps = Some(m.rps);
        } else {
            sign_rps = m.rps;
        }
        procs.stop(pid);
    }
    Ok(sign_rps)
}

async fn keyward_cc(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
    database: Option<String>,
    engine: &str,
    sign: Option<f64>,
) -> anyhow::Result<()> {
    let kw = Keyward::start(procs, &o.bin_dir, database).await?;
    for alg in ["ES256", "EdDSA", "RS256"] {
        let (id, secret) = kw.client_for(alg).await?;
        let shot = Shot::post_form(
            format!("{}/oauth2/token", kw.base),
            "grant_type=client_credentials",
        )
        .header("authorization", keyward_core::basic::encode(&id, &secret));
        let m = measure(shot, o).await;
        rows.push(Row {
            target: format!("keyward-cc-{engine} {alg}"),
            m,
            rss_mib: procs::peak_rss_mib(kw.pid),
            baseline: sign,
        });
    }
    procs.stop(kw.pid);
    Ok(())
}

async fn introspect(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
    sign: Option<f64>,
) -> anyhow::Result<()> {
    let kw = Keyward::start(procs, &o.bin_dir, None).await?;
    let (id, secret) = kw.client_for("ES256").await?;
    let token = kw.token(&id, &secret).await?;
    let shot = Shot::post_form(
        format!("{}/oauth2/introspect", kw.base),
        &format!("token={token}"),
    )
    .header("authorization", keyward_core::basic::encode(&id, &secret));
    let m = measure(shot, o).await;
    rows.push(Row {
        target: "keyward-introspect ES256".into(),
        m,
        rss_mib: procs::peak_rss_mib(kw.pid),
        baseline: sign,
    });
    procs.stop(kw.pid);
    Ok(())
}

async fn gateway(o: &Options, procs: &mut Procs, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let kw = Keyward::start(procs, &o.bin_dir, None).await?;
    let (id, secret) = kw.client_for("ES256").await?;
    let token = kw.token(&id, &secret).await?;
    let (up_pid, upstream) = procs.orders_api(&o.bin_dir).await?;
    let (gw_pid, gw) = procs
        .gateway(&o.bin_dir, &upstream, &kw.base, &o.gateway_log_level)
        .await?;
    let bearer = format!("Bearer {token}");
    let direct = measure(
        Shot::get(format!("{upstream}/manage/orders/42")).header("authorization", bearer.clone()),
        o,
    )
    .await;
    rows.push(Row {
        target: "upstream (orders-api)".into(),
        m: direct,
        rss_mib: procs::peak_rss_mib(up_pid),
        baseline: None,
    });
    let through = measure(
        Shot::get(format!("{gw}/manage/orders/42")).header("authorization", bearer),
        o,
    )
    .await;
    rows.push(Row {
        target: format!("gateway (log {})", o.gateway_log_level),
        m: through,
        rss_mib: procs::peak_rss_mib(gw_pid),
        baseline: Some(direct.rps),
    });
    for pid in [gw_pid, up_pid, kw.pid] {
        procs.stop(pid);
    }
    Ok(())
}

async fn bench(o: &Options) -> anyhow::Result<Vec<Row>> {
    let mut procs = Procs::new()?;
    let mut rows = Vec::new();
    let mut sign = None;
    for t in &o.targets {
        match t.as_str() {
            "baselines" => sign = Some(baselines(o, &mut procs, &mut rows).await?),
            "keyward-sqlite" => keyward_cc(o, &mut procs, &mut rows, None, "sqlite", sign).await?,
            "keyward-postgres" => {
                let db = procs.postgres_database()?;
                keyward_cc(o, &mut procs, &mut rows, Some(db), "pg", sign).await?
            }
            "introspect" => introspect(o, &mut procs, &mut rows, sign).await?,
            "gateway" => gateway(o, &mut procs, &mut rows).await?,
            _ => {}
        }
        if let Some(last) = rows.last() {
            eprintln!("  measured {} ({:.0} req/s)", last.target, last.m.rps);
        }
    }
    Ok(rows)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    if let (Some(cmd), Some(addr)) = (args.next(), args.next()) {
        if let Some(which) = cmd.strip_prefix("serve-") {
            // A baseline server gets the same runtime as Keyward: one worker per core.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            return rt.block_on(baseline::serve(which, &addr));
        }
    }
    let o = options()?;
    // The load generator keeps to one thread, leaving the other core to the server under test.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!(
            "keyward bench: {} s per target after 1 s of warm-up, {} connections, load generator on 1 thread; \
             Keyward runs with log_level warn; ratios: baseline-sign to baseline-hello, keyward to baseline-sign, \
             gateway to its upstream",
            o.seconds, o.connections
        );
        let started = std::time::Instant::now();
        let rows = bench(&o).await?;
        print(&rows);
        println!("\nfinished in {:.0} s", started.elapsed().as_secs_f64());
        Ok(())
    })
}
