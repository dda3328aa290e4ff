//! The command line: `serve`, `migrate`, `config example`, and admin commands (clients, resources, keys,
//! accounts, grants) that act on the same database as a running server, through the same admin service as the
//! admin API.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::app::App;
use crate::clock::Clock;
use crate::config::{self, Config, Flags};
use crate::service::accounts::AccountInput;
use crate::service::admin::{Actor, ClientInput, DurationValue, ResourceInput};
use crate::store::GrantFilter;

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
}

/// `keyward config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a commented example config file.
    Example,
}

/// Output format flag.
#[derive(Debug, Args)]
pub struct Output {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `keyward clients …`.
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Create a client; prints its id and its secret (shown once).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Grant type (repeatable; default client_credentials).
        #[arg(long = "grant-type", value_name = "G")]
        grant_types: Vec<String>,
        /// Allowed resource identifier (repeatable). Without one: `default_client_resource`, else the only
        /// resource there is; with several and no default, name them.
        #[arg(long = "resource", value_name = "ID")]
        resources: Vec<String>,
        /// Allowed scope (repeatable).
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
        /// Default resource when a request names none.
        #[arg(long, value_name = "ID")]
        default_resource: Option<String>,
        /// Resource this client serves as a resource server (may introspect its tokens; repeatable).
        #[arg(long = "serves", value_name = "ID")]
        serves: Vec<String>,
        /// Choose the client id instead of generating one.
        #[arg(long, value_name = "ID")]
        client_id: Option<String>,
        /// Redirect URI for authorization_code (repeatable).
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A public client (a browser or mobile app): no secret, authorization_code and refresh_token only.
        #[arg(long)]
        public: bool,
        /// What the app does, shown on the consent page.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Print `CLIENT_ID=…` and `CLIENT_SECRET=…` lines for `eval` in a POSIX shell.
        #[arg(long, conflicts_with = "json")]
        shell: bool,
        #[command(flatten)]
        out: Output,
    },
    /// List clients.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Show one client and its secrets (never their values).
    Show {
        /// Client id.
        id: String,
        #[command(flatten)]
        out: Output,
    },
    /// Disable a client: it can no longer get tokens.
    Disable {
        /// Client id.
        id: String,
    },
    /// Enable a client.
    Enable {
        /// Client id.
        id: String,
    },
    /// Delete a client and its secrets.
    Delete {
        /// Client id.
        id: String,
    },
    /// Add a new secret (shown once); the old ones stop working after the overlap.
    RotateSecret {
        /// Client id.
        id: String,
        /// How long the old secrets keep working, e.g. 24h; 0 retires them now.
        #[arg(long, value_name = "DURATION", default_value = "24h")]
        retire_old_after: String,
        /// Print `CLIENT_ID=…` and `CLIENT_SECRET=…` lines for `eval` in a POSIX shell.
        #[arg(long, conflicts_with = "json")]
        shell: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Import clients with the secrets they already have, from JSON Lines (one client per line, as
    /// `POST /admin/v1/clients` takes it, plus `client_id` and `client_secret`); all or nothing.
    Import {
        /// The file to read; `-` reads standard input.
        file: PathBuf,
    },
}

/// `keyward resources …`.
#[derive(Debug, Subcommand)]
pub enum ResourcesCommand {
    /// Create a resource.
    Create {
        /// The audience string (a URL, a GUID, a host name).
        #[arg(long)]
        identifier: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// A scope of its catalogue (repeatable).
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
        /// Access-token lifetime, e.g. 15m (default) or 24h.
        #[arg(long, value_name = "DURATION")]
        access_token_ttl: Option<String>,
        /// ES256 (default), RS256 or EdDSA.
        #[arg(long, value_name = "ALG")]
        signing_alg: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// List resources.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// The way back into a locked-out admin API: create the admin resource (urn:keyward:admin) when it is
    /// missing, or give it back the scopes keyward:admin and keyward:admin:read. Then make an admin client with
    /// `clients create --resource urn:keyward:admin --scope keyward:admin`.
    RestoreAdmin {
        #[command(flatten)]
        out: Output,
    },
}

/// `keyward accounts …`.
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account; without --password-stdin a password is generated and printed (shown once).
    Create {
        /// Email address (the login name).
        #[arg(long)]
        email: String,
        /// The platform's seller id.
        #[arg(long, value_name = "P")]
        partner_id: Option<String>,
        /// user (default) or operator.
        #[arg(long, value_name = "ROLE", value_parser = ["user", "operator"])]
        role: Option<String>,
        /// Read the password from the first line of standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// What the account may give the API keys it makes in the console: RESOURCE=SCOPE[,SCOPE…] (repeatable).
        #[arg(long, value_name = "RESOURCE=SCOPES")]
        key_scope: Vec<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Set what an account may give the API keys it makes in the console (replaces the earlier allowance; no
    /// --key-scope takes it away; existing keys keep their scopes).
    Allow {
        /// Account id.
        id: String,
        /// RESOURCE=SCOPE[,SCOPE…] (repeatable).
        #[arg(long, value_name = "RESOURCE=SCOPES")]
        key_scope: Vec<String>,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Show one account.
    Show {
        /// Account id (`acct_…`).
        id: String,
        #[command(flatten)]
        out: Output,
    },
    /// Disable an account: it can no longer log in, its sessions end and its grants are revoked.
    Disable {
        /// Account id.
        id: String,
    },
    /// Enable an account.
    Enable {
        /// Account id.
        id: String,
    },
    /// Delete an account; its grants are revoked first.
    Delete {
        /// Account id.
        id: String,
    },
}

/// `keyward grants …`.
#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// List grants (what accounts delegated to apps).
    List {
        /// Only this account's.
        #[arg(long, value_name = "ID")]
        account: Option<String>,
        /// Only this app's.
        #[arg(long, value_name = "ID")]
        client: Option<String>,
        /// Only grants neither revoked nor expired.
        #[arg(long)]
        live: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Revoke a grant: its refresh tokens stop working and its access tokens are denylisted.
    Revoke {
        /// Grant id (`grt_…`).
        id: String,
    },
}

/// `keyward keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys and their state.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Rotate signing keys (publish now, sign after key_publish_delay).
    Rotate {
        /// Only this algorithm.
        #[arg(long)]
        alg: Option<String>,
        #[command(flatten)]
        out: Output,
    },
}

impl Command {
    /// Whether the command changes anything.
    fn writes(&self) -> bool {
        match self {
            Command::Clients(c) => {
                !matches!(c, ClientsCommand::List { .. } | ClientsCommand::Show { .. })
            }
            Command::Resources(c) => !matches!(c, ResourcesCommand::List { .. }),
            Command::Keys(k) => matches!(k, KeysCommand::Rotate { .. }),
            Command::Accounts(c) => !matches!(
                c,
                AccountsCommand::List { .. } | AccountsCommand::Show { .. }
            ),
            Command::Grants(g) => matches!(g, GrantsCommand::Revoke { .. }),
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
    let (app, first) = App::open(config, Clock::system()).await?;
    if let Some(first) = &first {
        crate::first_start::print_first_start(first);
    }
    let actor = Actor::cli();
    let writes = command.writes();
    let result = admin_command(&app, &actor, command).await;
    app.store.close().await;
    if writes && result.is_ok() {
        // Running servers read the change feed every FEED_POLL on SQLite, and on PostgreSQL when notified and
        // at least every FEED_CATCH_UP: returning after twice the longer of the two means that a script's next
        // request to a running server already sees this change, even if a notification was lost.
        tokio::time::sleep(crate::follower::FEED_POLL.max(crate::follower::FEED_CATCH_UP) * 2)
            .await;
    }
    result
}

async fn admin_command(app: &App, actor: &Actor, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Clients(c) => clients(app, actor, c).await,
        Command::Resources(c) => resources(app, actor, c).await,
        Command::Accounts(c) => accounts(app, actor, c).await,
        Command::Grants(c) => grants(app, actor, c).await,
        Command::Keys(KeysCommand::List { out }) => {
            let items = app.admin.keys_list();
            print_rows(
                &out,
                &json!(items),
                &["kid", "alg", "state", "created_at", "activates_at"],
            );
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate { alg, out }) => {
            let made = app.admin.keys_rotate(actor, alg.as_deref()).await?;
            print_rows(&out, &json!(made), &["kid", "alg", "activates_at"]);
            Ok(())
        }
        Command::Serve | Command::Migrate | Command::Config(_) | Command::Gateway => Ok(()),
    }
}

async fn clients(app: &App, actor: &Actor, c: ClientsCommand) -> anyhow::Result<()> {
    match c {
        ClientsCommand::Create {
            name,
            grant_types,
            resources,
            scopes,
            default_resource,
            serves,
            client_id,
            redirect_uris,
            public,
            description,
            shell,
            out,
        } => {
            let input = ClientInput {
                client_id,
                name: Some(name),
                grant_types: (!grant_types.is_empty()).then_some(grant_types),
                // No `--resource`: the deployment's default, or a refusal naming the resources.
                resources: (!resources.is_empty()).then_some(resources),
                scopes: Some(scopes),
                default_resource,
                serves_resources: (!serves.is_empty()).then_some(serves),
                client_type: public.then(|| "public".to_owned()),
                redirect_uris: (!redirect_uris.is_empty()).then_some(redirect_uris),
                description,
                ..ClientInput::default()
            };
            let (view, secret) = app.admin.client_create(actor, input).await?;
            let Some(secret) = secret else {
                if out.json {
                    println!("{}", serde_json::to_string_pretty(&json!(view))?);
                } else {
                    println!(
                        "client_id: {}\n\nA public client: it has no secret.",
                        view.client_id
                    );
                }
                return Ok(());
            };
            if shell {
                print_shell(&view.client_id, &secret);
            } else if out.json {
                let mut v = json!(view);
                v["client_secret"] = json!(secret);
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "client_id:     {}\nclient_secret: {secret}\n\nThe secret is shown once and cannot be recovered.",
                    view.client_id
                );
            }
        }
        ClientsCommand::List { out } => {
            let mut all = Vec::new();
            let mut after = String::new();
            loop {
                let page = app.admin.clients_list(&after, None, 1_000).await?;
                let Some(last) = page.last() else { break };
                after = last.client_id.clone();
                let full = page.len() == 1_000;
                all.extend(page);
                if !full {
                    break;
                }
            }
            print_rows(
                &out,
                &json!(all),
                &["client_id", "name", "enabled", "resources", "scopes"],
            );
        }
        ClientsCommand::Show { id, out } => {
            let view = app.admin.client_get(&id).await?;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                let v = json!(view);
                for k in [
                    "client_id",
                    "name",
                    "enabled",
                    "grant_types",
                    "auth_methods",
                    "resources",
                    "scopes",
                    "default_resource",
                    "serves_resources",
                    "client_type",
                    "redirect_uris",
                    "description",
                    "refresh_token_ttl",
                    "created_at",
                ] {
                    println!("{k:17} {}", cell(&v[k]));
                }
                println!("secrets:");
                print_rows(
                    &Output { json: false },
                    &v["secrets"],
                    &["id", "hint", "created_at", "expires_at", "last_used_at"],
                );
            }
        }
        ClientsCommand::Disable { id } => {
            app.admin.client_set_enabled(actor, &id, false).await?;
            println!("disabled {id}");
        }
        ClientsCommand::Enable { id } => {
            app.admin.client_set_enabled(actor, &id, true).await?;
            println!("enabled {id}");
        }
        ClientsCommand::Delete { id } => {
            app.admin.client_delete(actor, &id).await?;
            println!("deleted {id}");
        }
        ClientsCommand::Import { file } => {
            let count = if file.as_os_str() == "-" {
                app.admin
                    .clients_import(actor, std::io::stdin().lock())
                    .await?
            } else {
                let f = std::fs::File::open(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                app.admin
                    .clients_import(actor, std::io::BufReader::new(f))
                    .await?
            };
            println!("imported {count} clients");
        }
        ClientsCommand::RotateSecret {
            id,
            retire_old_after,
            shell,
            out,
        } => {
            let made = app
                .admin
                .secret_add(actor, &id, Some(DurationValue::Text(retire_old_after)))
                .await?;
            if shell {
                print_shell(&made.client_id, &made.client_secret);
            } else if out.json {
                println!("{}", serde_json::to_string_pretty(&made)?);
            } else {
                println!(
                    "client_id:     {}\nclient_secret: {}\nsecret_id:     {}",
                    made.client_id, made.client_secret, made.secret_id
                );
                if let Some(at) = made.old_secrets_expire_at {
                    println!("older secrets stop working at {at} (Unix time)");
                }
                println!("\nThe secret is shown once and cannot be recovered.");
            }
        }
    }
    Ok(())
}

async fn resources(app: &App, actor: &Actor, c: ResourcesCommand) -> anyhow::Result<()> {
    match c {
        ResourcesCommand::Create {
            identifier,
            name,
            scopes,
            access_token_ttl,
            signing_alg,
            out,
        } => {
            let input = ResourceInput {
                identifier,
                name,
                scopes,
                access_token_ttl: access_token_ttl.map(DurationValue::Text),
                signing_alg,
                scope_details: None,
            };
            let row = app.admin.resource_create(actor, input).await?;
            print_rows(
                &out,
                &json!([crate::http::resource_json(&row)]),
                RESOURCE_COLUMNS,
            );
        }
        ResourcesCommand::RestoreAdmin { out } => {
            let (row, changed) = app.admin.admin_resource_restore(actor).await?;
            if !changed {
                eprintln!("the admin resource already has its scopes; nothing changed");
            }
            print_rows(
                &out,
                &json!([crate::http::resource_json(&row)]),
                RESOURCE_COLUMNS,
            );
        }
        ResourcesCommand::List { out } => {
            let rows: Vec<Value> = app
                .admin
                .resources_list()
                .await?
                .iter()
                .map(crate::http::resource_json)
                .collect();
            print_rows(&out, &json!(rows), RESOURCE_COLUMNS);
        }
    }
    Ok(())
}

/// The columns of an account listing.
const ACCOUNT_COLUMNS: &[&str] = &["account_id", "email", "partner_id", "role", "enabled"];

async fn accounts(app: &App, actor: &Actor, c: AccountsCommand) -> anyhow::Result<()> {
    match c {
        AccountsCommand::Create {
            email,
            partner_id,
            role,
            password_stdin,
            key_scope,
            out,
        } => {
            let password = if password_stdin {
                Some(read_password_line(std::io::stdin().lock())?)
            } else {
                None
            };
            let input = AccountInput {
                email: Some(email),
                partner_id,
                password,
                role,
                enabled: None,
                key_scopes: Some(parse_key_scopes(&key_scope)?),
            };
            let (view, generated) = app.accounts.account_create(actor, input).await?;
            if out.json {
                let mut v = json!(view);
                if let Some(p) = &generated {
                    v["password"] = json!(p);
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if let Some(p) = generated {
                println!(
                    "account_id: {}\nemail:      {}\npassword:   {p}\n\nThe password is shown once and cannot be recovered.",
                    view.account_id, view.email
                );
            } else {
                println!(
                    "account_id: {}\nemail:      {}",
                    view.account_id, view.email
                );
            }
        }
        AccountsCommand::List { out } => {
            let mut all = Vec::new();
            let mut after = String::new();
            loop {
                let page = app.accounts.accounts_list(&after, None, 1_000).await?;
                let Some(last) = page.last() else { break };
                after = last.account_id.clone();
                let full = page.len() == 1_000;
                all.extend(page);
                if !full {
                    break;
                }
            }
            print_rows(&out, &json!(all), ACCOUNT_COLUMNS);
        }
        AccountsCommand::Show { id, out } => {
            let view = app.accounts.account_get(&id).await?;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                let v = json!(view);
                for k in [
                    "account_id",
                    "email",
                    "partner_id",
                    "role",
                    "enabled",
                    "failed_logins",
                    "key_scopes",
                    "created_at",
                    "updated_at",
                ] {
                    println!("{k:14} {}", cell(&v[k]));
                }
                println!("authorized apps:");
                print_rows(
                    &Output { json: false },
                    &json!(app.consents.authorized_apps(&id).await?),
                    &["client_id", "name", "resource", "scopes", "authorized_at"],
                );
            }
        }
        AccountsCommand::Allow { id, key_scope } => {
            let input = AccountInput {
                key_scopes: Some(parse_key_scopes(&key_scope)?),
                ..AccountInput::default()
            };
            let view = app.accounts.account_update(actor, &id, input).await?;
            println!("{id} may give its keys: {}", json!(view.key_scopes));
        }
        AccountsCommand::Disable { id } => {
            app.accounts
                .account_update(actor, &id, enabled(false))
                .await?;
            println!("disabled {id}");
        }
        AccountsCommand::Enable { id } => {
            app.accounts
                .account_update(actor, &id, enabled(true))
                .await?;
            println!("enabled {id}");
        }
        AccountsCommand::Delete { id } => {
            app.accounts.account_delete(actor, &id).await?;
            println!("deleted {id}");
        }
    }
    Ok(())
}

/// `--key-scope RESOURCE=SCOPE[,SCOPE…]` values as an allowance. The resource ends at the last `=`, so an
/// identifier may hold one (a scope may not).
fn parse_key_scopes(values: &[String]) -> anyhow::Result<keyward_core::console::KeyScopes> {
    let mut out = keyward_core::console::KeyScopes::new();
    for v in values {
        let (resource, scopes) = v
            .rsplit_once('=')
            .with_context(|| format!("--key-scope {v:?}: expected RESOURCE=SCOPE[,SCOPE…]"))?;
        out.entry(resource.to_owned()).or_default().extend(
            scopes
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    Ok(out)
}

/// An account change that only enables or disables it.
fn enabled(enabled: bool) -> AccountInput {
    AccountInput {
        enabled: Some(enabled),
        ..AccountInput::default()
    }
}

/// The first line of `input`, without its line ending (`--password-stdin`).
fn read_password_line(mut input: impl std::io::BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        anyhow::bail!("--password-stdin: standard input holds no password");
    }
    Ok(password.to_owned())
}

/// The columns of a grant listing.
const GRANT_COLUMNS: &[&str] = &[
    "id",
    "account_id",
    "client_id",
    "resource",
    "scopes",
    "expires_at",
    "revoked_at",
];

async fn grants(app: &App, actor: &Actor, c: GrantsCommand) -> anyhow::Result<()> {
    match c {
        GrantsCommand::List {
            account,
            client,
            live,
            out,
        } => {
            let filter = GrantFilter {
                account_id: account.as_deref(),
                client_id: client.as_deref(),
                live_at: live.then(|| app.clock.now()),
                idle_ttl: app.delegated.refresh_token_idle_ttl,
            };
            let mut all = Vec::new();
            let mut after = String::new();
            loop {
                let page = app.consents.grants_list(&filter, &after, 1_000).await?;
                let Some(last) = page.last() else { break };
                after = last.id.clone();
                let full = page.len() == 1_000;
                all.extend(page);
                if !full {
                    break;
                }
            }
            let rows: Vec<Value> = all
                .iter()
                .map(|g| {
                    let mut v = json!(g);
                    v["scopes"] = json!(crate::store::split_list(&g.scopes));
                    v
                })
                .collect();
            print_rows(&out, &json!(rows), GRANT_COLUMNS);
        }
        GrantsCommand::Revoke { id } => {
            app.consents.grant_revoke(actor, &id).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

/// Prints credentials as POSIX shell assignments, single-quoted so any client id is safe to `eval`.
fn print_shell(id: &str, secret: &str) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    println!("CLIENT_ID={}\nCLIENT_SECRET={}", quote(id), quote(secret));
}

/// The columns of a resource listing.
const RESOURCE_COLUMNS: &[&str] = &[
    "id",
    "identifier",
    "name",
    "scopes",
    "access_token_ttl",
    "signing_alg",
];

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(" "),
        v => v.to_string(),
    }
}

/// Prints rows as JSON or as an aligned table of `columns`.
fn print_rows(out: &Output, rows: &Value, columns: &[&str]) {
    if out.json {
        println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default());
        return;
    }
    let rows = rows.as_array().cloned().unwrap_or_default();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| cell(&r[*c])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |vals: Vec<String>| {
        let parts: Vec<String> = vals
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_uppercase()).collect());
    for r in cells {
        line(r);
    }
}
