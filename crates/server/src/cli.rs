//! The command line: `serve`, `migrate`, `config example`, `gateway`, `agent`, and admin commands (clients, resources, keys,
//! accounts, grants) that act on the same database as a running server, through the same services as the admin
//! API, opened without the server's state (`Toolkit`). This file holds the top of the clap command line and the
//! dispatch; each group of admin commands, with its arguments, is a module of `cli/`.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::clock::Clock;
use crate::config::{self, Config, Flags};
use crate::service::Actor;
use crate::toolkit::Toolkit;

mod accounts;
mod clients;
mod grants;
mod keys;
mod output;
mod resources;

pub use accounts::AccountsCommand;
pub use clients::ClientsCommand;
pub use grants::GrantsCommand;
pub use keys::KeysCommand;
pub use output::Output;
pub use resources::ResourcesCommand;

/// Keyward: an OAuth 2.0 token service for API platforms.
#[derive(Debug, Parser)]
#[command(name = "keyward", version, about)]
pub struct Cli {
    /// Config file (TOML); also KEYWARD_CONFIG.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database: a SQLite path or a postgres:// URL.
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// Address to listen on.
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Issuer URL.
    #[arg(long, global = true, value_name = "URL")]
    pub issuer: Option<String>,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, global = true, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage clients (API keys).
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Manage resources (APIs / audiences).
    #[command(subcommand)]
    Resources(ResourcesCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage accounts (the people who delegate access to apps).
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// List and revoke delegated grants.
    #[command(subcommand)]
    Grants(GrantsCommand),
    /// Run the gateway: verify tokens in front of an API in any language (`--config` names the gateway file;
    /// `--listen` overrides its address).
    Gateway,
    /// Run the agent: hold credentials for named APIs and give local apps their tokens (`GET /v1/token/NAME`) or
    /// call the APIs for them (`/NAME/<path>`) (`--config` names the agent file; `--listen` and `--metrics-listen`
    /// override its addresses).
    Agent,
    /// Print the public JWK (with `kid` and `alg`) of a private key file (PEM, PKCS#8): what a `private_key_jwt`
    /// client registers, made by whoever holds the private key (`clients create --jwks-file`, the console).
    PublicJwk {
        /// The private key: P-256 (ES256), Ed25519 (EdDSA) or RSA of 2048 bits or more (PS256, or RS256 with
        /// `--alg`).
        #[arg(long, value_name = "FILE")]
        key: std::path::PathBuf,
        /// The key id to register it under.
        #[arg(long, value_name = "KID")]
        kid: String,
        /// RS256 for an RSA key that signs RS256 (the default follows the key).
        #[arg(long, value_name = "ALG")]
        alg: Option<String>,
    },
}

/// Prints the public JWK of `key` for `keyward public-jwk`.
pub fn public_jwk(key: &std::path::Path, kid: &str, alg: Option<&str>) -> Result<String, String> {
    let alg = alg
        .map(|a| {
            keyward_client::AssertionAlg::from_name(a)
                .ok_or_else(|| format!("--alg {a}: use ES256, PS256, RS256 or EdDSA"))
        })
        .transpose()?;
    let signing = keyward_client::SigningKey::from_pem_file(key, alg)?;
    serde_json::to_string_pretty(&signing.public_jwk_for(kid)).map_err(|e| e.to_string())
}

/// `keyward config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a commented example config file.
    Example,
}

impl Command {
    /// Whether the command changes anything.
    fn writes(&self) -> bool {
        match self {
            Command::Clients(c) => c.writes(),
            Command::Resources(c) => c.writes(),
            Command::Keys(c) => c.writes(),
            Command::Accounts(c) => c.writes(),
            Command::Grants(c) => c.writes(),
            _ => false,
        }
    }
}

impl Cli {
    /// Loads the configuration this invocation asks for.
    pub fn config(&self, env: &HashMap<String, String>) -> Result<Config, config::ConfigError> {
        let flags = Flags {
            listen: self.listen.clone(),
            database: self.database.clone(),
            issuer: self.issuer.clone(),
            metrics_listen: self.metrics_listen.clone(),
        };
        config::load(self.config.as_deref(), env, &flags)
    }
}

/// Runs an admin command against the database and prints the result.
pub async fn run_admin(command: Command, config: &Config) -> anyhow::Result<()> {
    let (tools, first) = Toolkit::open(config, Clock::system()).await?;
    if let Some(first) = &first {
        crate::first_start::print_first_start(first);
    }
    let actor = Actor::cli();
    let writes = command.writes();
    let result = admin_command(&tools, &actor, command)
        .await
        .map_err(output::said);
    tools.store.close().await;
    if writes && result.is_ok() {
        // Running servers read the change feed every FEED_POLL on SQLite, and on PostgreSQL when notified and
        // at least every FEED_CATCH_UP: returning after twice the longer of the two means that a script's next
        // request to a running server already sees this change, even if a notification was lost.
        tokio::time::sleep(crate::feed::FEED_POLL.max(crate::feed::FEED_CATCH_UP) * 2).await;
    }
    result
}

async fn admin_command(tools: &Toolkit, actor: &Actor, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Clients(c) => clients::run(tools, actor, c).await,
        Command::Resources(c) => resources::run(tools, actor, c).await,
        Command::Keys(c) => keys::run(tools, actor, c).await,
        Command::Accounts(c) => accounts::run(tools, actor, c).await,
        Command::Grants(c) => grants::run(tools, actor, c).await,
        Command::Serve
        | Command::Migrate
        | Command::Config(_)
        | Command::Gateway
        | Command::Agent
        | Command::PublicJwk { .. } => Ok(()),
    }
}

/// The rows of a listing read a page of 1,000 at a time, each page after the last row of the one before: `page`
/// reads the page after a key, `key` is a row's.
async fn every_page<T, E, P>(
    mut page: impl FnMut(String) -> P,
    key: impl Fn(&T) -> String,
) -> anyhow::Result<Vec<T>>
where
    P: Future<Output = Result<Vec<T>, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let rows = page(after).await?;
        let Some(last) = rows.last() else { break };
        after = key(last);
        let full = rows.len() == PAGE;
        all.extend(rows);
        if !full {
            break;
        }
    }
    Ok(all)
}

/// How many rows a listing reads at a time.
const PAGE: usize = 1_000;
