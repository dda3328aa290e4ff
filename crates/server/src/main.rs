//! The `keyward` binary: parses the command line, loads the configuration, and runs the chosen command.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;
use keyward::app::App;
use keyward::cli::{Cli, Command, ConfigCommand, run_admin};
use keyward::clock::Clock;
use keyward::config::{Config, EXAMPLE, LogFormat};
use keyward::otel::Traces;
use keyward::store::Store;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Config(ConfigCommand::Example) = cli.command {
        print!("{EXAMPLE}");
        return ExitCode::SUCCESS;
    }
    if let Command::PublicJwk { key, kid, alg } = &cli.command {
        return match keyward::cli::public_jwk(key, kid, alg.as_deref()) {
            Ok(jwk) => {
                println!("{jwk}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("keyward: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Gateway = cli.command {
        return gateway(&cli);
    }
    if let Command::Agent = cli.command {
        return agent(&cli);
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = match cli.config(&env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keyward: {e}");
            return ExitCode::from(2);
        }
    };
    // Admin commands log warnings only, so their output stays readable.
    let level = if matches!(cli.command, Command::Serve) {
        config.log_level.clone()
    } else {
        "warn".into()
    };
    let runtime = match runtime(config.worker_threads) {
        Ok(r) => r,
        Err(code) => return code,
    };
    // Only `serve` exports traces, and only when an OTLP endpoint is configured.
    let traces = match (&cli.command, &config.otlp_endpoint) {
        (Command::Serve, Some(endpoint)) => {
            match Traces::start(endpoint, runtime.handle().clone()) {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("keyward: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    init_logs(config.log_format, &level, traces.as_ref());
    exit_code(runtime.block_on(run(cli.command, config, traces)))
}

/// `keyward gateway --config FILE`.
fn gateway(cli: &Cli) -> ExitCode {
    let Some(path) = &cli.config else {
        eprintln!(
            "keyward gateway: --config FILE is required (the gateway's own file; see docs/GATEWAY.md)"
        );
        return ExitCode::from(2);
    };
    let config = match keyward::gateway::config::load(path, cli.listen.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keyward: {e}");
            return ExitCode::from(2);
        }
    };
    init_logs(LogFormat::Text, &config.log_level, None);
    block_on(keyward::gateway::run(config, shutdown_signal()), None)
}

/// `keyward agent --config FILE`.
fn agent(cli: &Cli) -> ExitCode {
    use keyward::agent::config::{self, Env, Overrides};
    let Some(path) = &cli.config else {
        eprintln!(
            "keyward agent: --config FILE is required (the agent's own file; see docs/AGENT.md)"
        );
        return ExitCode::from(2);
    };
    let overrides = Overrides {
        listen: cli.listen.clone(),
        metrics_listen: cli.metrics_listen.clone(),
    };
    let env: std::sync::Arc<Env> = std::sync::Arc::new(|name: &str| std::env::var(name).ok());
    let config = match config::load(path, &overrides, env.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keyward: {e}");
            return ExitCode::from(2);
        }
    };
    init_logs(LogFormat::Text, &config.settings.log_level, None);
    let run = keyward::agent::run(config, path.clone(), overrides, env, shutdown_signal());
    block_on(run, None)
}

/// Runs `work` on a multi-threaded runtime with `threads` workers (one per core when `None`).
fn block_on(
    work: impl std::future::Future<Output = anyhow::Result<()>>,
    threads: Option<usize>,
) -> ExitCode {
    match runtime(threads) {
        Ok(runtime) => exit_code(runtime.block_on(work)),
        Err(code) => code,
    }
}

/// A multi-threaded runtime with `threads` workers (one per core when `None`), or the exit code of a failure to
/// start one (said on stderr).
fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    builder.enable_all().build().map_err(|e| {
        eprintln!("keyward: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

/// The exit code of a command's result, saying the error on stderr.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyward: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config, traces: Option<Traces>) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let served = serve(config).await;
            // Once the server has stopped (or failed to start): send the spans still queued.
            if let Some(traces) = traces {
                traces.shutdown().await;
            }
            served
        }
        Command::Migrate => {
            config.create_data_dir()?;
            let store = Store::connect(&config.database, &config.pool).await?;
            store.migrate().await?;
            println!("migrations applied ({})", store.engine());
            Ok(())
        }
        other => run_admin(other, &config).await,
    }
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    // The bound address, not the configured one: with port 0 the system picks the port, and a default issuer
    // must name the port clients can reach.
    let bound = listener.local_addr()?;
    if config.issuer_is_default {
        config.issuer = format!("http://{bound}");
    }
    let (app, first) = App::open(&config, Clock::system()).await?;
    if let Some(first) = &first {
        keyward::first_start::print_first_start(first);
    }
    let aliases: Vec<&str> = app
        .settings
        .token_endpoints
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    if let Some(addr) = config.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (metrics_listen): {e}"))?;
        tracing::info!(metrics_listen = %metrics.local_addr()?, "serving Prometheus metrics at /metrics");
        let router = keyward::http::metrics_router(app.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics, router).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    tracing::info!(listen = %bound, issuer = %config.issuer, database = app.store.engine(), token_endpoint_aliases = ?aliases, "keyward is serving");
    keyward::serve::serve(app, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// Logs to stderr at `level`, and exports spans to `traces` when given (the log level does not filter those).
fn init_logs(format: LogFormat, level: &str, traces: Option<&Traces>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| "info".into());
    // Colour codes only for a person at a terminal, never in a file or a pipe.
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Json => logs.json().boxed(),
        LogFormat::Text => logs.boxed(),
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces.map(Traces::layer))
        .init();
}
