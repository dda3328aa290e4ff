//! The integrator's side in the benchmark: `keyward agent` in token mode beside `baseline-hello`, and in proxy mode
//! beside `baseline-proxy` (a bare hyper reverse proxy), each pair in alternating slices.

use anyhow::bail;

use crate::load::{self, Shot};
use crate::procs::{self, Keyward, Procs};
use crate::scenarios::alternating;
use crate::{Options, Row};

/// `keyward agent` holding a client of a real Keyward, in its two modes, each beside the baseline that does the
/// same HTTP work without the agent, in alternating slices. Token mode (`GET /v1/token/bench`, answered from
/// memory) beside baseline-hello; proxy mode (`GET /bench/manage/orders/42`, the token added and the request
/// forwarded to a baseline-hello) beside baseline-proxy forwarding `GET /manage/orders/42` to the same upstream.
pub(crate) async fn agent(
    o: &Options,
    procs: &mut Procs,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let kw = Keyward::start(procs, &o.bin_dir, None, None).await?;
    let (id, secret) = kw.client_for("ES256").await?;
    // The token-mode reference and both proxies' upstream: it answers any path.
    let (hello_pid, hello) = procs.baseline("hello").await?;
    let (proxy_pid, proxy) = procs.baseline_proxy(&hello).await?;
    let api = procs::AgentApi {
        token_url: format!("{}/oauth2/token", kw.base),
        // The audience `client_for("ES256")` allows.
        resource: "https://bench.api",
        client_id: &id,
        client_secret: &secret,
        api_url: &hello,
    };
    let (agent_pid, agent) = procs.agent(&o.bin_dir, &api, &o.gateway_log_level).await?;
    let through =
        Shot::get(format!("{agent}/bench/manage/orders/42")).header("metadata-flavor", "Keyward");
    if !load::once(&through).await {
        bail!(
            "keyward agent's proxy mode did not answer 200; its log:\n{}",
            procs.log("agent.log")
        );
    }
    let level = &o.gateway_log_level;

    let modes = [
        (
            "token",
            procs::agent_token_shot(&agent),
            Shot::get(format!("{hello}/")),
            "baseline-hello",
            hello_pid,
        ),
        (
            "proxy",
            through,
            Shot::get(format!("{proxy}/manage/orders/42")),
            "baseline-proxy",
            proxy_pid,
        ),
    ];
    for (mode, shot, reference, reference_name, reference_pid) in modes {
        let (m, b) = alternating(shot, reference, o).await;
        let row = Row::new(
            format!("agent {mode} mode (log {level})"),
            m,
            procs::peak_rss_mib(agent_pid),
        )
        .beside(
            rows,
            format!("  {reference_name}, alternating"),
            b,
            procs::peak_rss_mib(reference_pid),
        );
        rows.push(row);
    }
    for pid in [agent_pid, proxy_pid, hello_pid, kw.pid] {
        procs.stop(pid);
    }
    Ok(())
}
