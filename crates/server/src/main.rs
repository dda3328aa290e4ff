//! The `keyward` binary: parses the command line, loads the configuration, and runs the chosen command.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;
use keyward::app::{self, App};
use keyward::cli::{Cli, Command, ConfigCommand, run_admin};
use keyward::clock::Clock;
use keyward::config::{Config, EXAMPLE, LogFormat};
use keyward::store::Store;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Config(ConfigCommand::Example) = cli.command {
        print!("{EXAMPLE}");
        return ExitCode::SUCCESS;
    }
    if let Command::Gateway = cli.command {
        return gateway(&cli);
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
    init_logs(config.log_format, &level);
    let threads = config.worker_threads;
    block_on(run(cli.command, config), threads)
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
    init_logs(LogFormat::Text, &config.log_level);
    block_on(keyward::gateway::run(config, shutdown_signal()), None)
}

/// Runs `work` on a multi-threaded runtime with `threads` workers (one per core when `None`).
fn block_on(
    work: impl std::future::Future<Output = anyhow::Result<()>>,
    threads: Option<usize>,
) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keyward: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyward: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
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
    let (app, first) = App::open(&config, Clock::System).await?;
    if let Some(first) = &first {
        app::print_first_start(first);
    }
    let aliases: Vec<&str> = app
        .token_endpoints
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    if let Some(addr) = config.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (metrics_listen): {e}"))?;
        tracing::info!(metrics_listen = %metrics.local_addr()?, "serving Prometheus metrics at /metrics");
        let router = keyward::metrics::router(app.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics, router).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    tracing::info!(listen = %bound, issuer = %config.issuer, database = app.store.engine(), token_endpoint_aliases = ?aliases, "keyward is serving");
    app::serve(app, listener, shutdown_signal()).await
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

fn init_logs(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| "info".into());
    // Colour codes only for a person at a terminal, never in a file or a pipe.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
