//! `keyward accounts …`: create (with a generated or given password), allow keys, list, show, disable, enable,
//! delete.

use crate::service::resets::ResetError;
use anyhow::Context as _;
use clap::Subcommand;
use keyward_core::console::KeyScopes;
use serde_json::json;

use super::output::{Output, TABLE, print_fields, print_rows};
use super::{PAGE, every_page};
use crate::service::Actor;
use crate::service::accounts::AccountInput;
use crate::toolkit::Toolkit;

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
    /// Print a one-time password reset link for an account (30 minutes), for operators without email: hand it
    /// to the account holder over a channel you trust. Nothing else is printed to standard output.
    ResetLink {
        /// Account id.
        id: String,
    },
    /// Turn off an account's two-step sign-in (its authenticator app and recovery codes), for a holder who lost
    /// both; every session of the account ends. Check who is asking before you do.
    RemoveSecondFactor {
        /// Account id.
        id: String,
    },
}

impl AccountsCommand {
    /// Whether the command changes anything.
    pub(super) fn writes(&self) -> bool {
        !matches!(
            self,
            AccountsCommand::List { .. } | AccountsCommand::Show { .. }
        )
    }
}

/// The columns of an account listing.
const ACCOUNT_COLUMNS: &[&str] = &["account_id", "email", "partner_id", "role", "enabled"];

/// What `accounts show` prints of an account, in this order, before its authorized apps.
const ACCOUNT_FIELDS: &[&str] = &[
    "account_id",
    "email",
    "partner_id",
    "role",
    "enabled",
    "failed_logins",
    "key_scopes",
    "created_at",
    "updated_at",
];

pub(super) async fn run(tools: &Toolkit, actor: &Actor, c: AccountsCommand) -> anyhow::Result<()> {
    let accounts = &tools.accounts;
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
            let (view, generated) = accounts.account_create(actor, input).await?;
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
            let all = every_page(
                |after| async move { accounts.accounts_list(&after, None, PAGE as i64).await },
                |a| a.account_id.clone(),
            )
            .await?;
            print_rows(&out, &json!(all), ACCOUNT_COLUMNS);
        }
        AccountsCommand::Show { id, out } => {
            let view = accounts.account_get(&id).await?;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_fields(&json!(view), ACCOUNT_FIELDS, 14);
                println!("authorized apps:");
                print_rows(
                    TABLE,
                    &json!(tools.consents.authorized_apps(&id).await?),
                    &["client_id", "name", "resource", "scopes", "authorized_at"],
                );
            }
        }
        AccountsCommand::Allow { id, key_scope } => {
            let input = AccountInput {
                key_scopes: Some(parse_key_scopes(&key_scope)?),
                ..AccountInput::default()
            };
            let view = accounts.account_update(actor, &id, input).await?;
            println!("{id} may give its keys: {}", json!(view.key_scopes));
        }
        AccountsCommand::Disable { id } => {
            accounts.account_update(actor, &id, enabled(false)).await?;
            println!("disabled {id}");
        }
        AccountsCommand::Enable { id } => {
            accounts.account_update(actor, &id, enabled(true)).await?;
            println!("enabled {id}");
        }
        AccountsCommand::Delete { id } => {
            accounts.account_delete(actor, &id).await?;
            println!("deleted {id}");
        }
        AccountsCommand::RemoveSecondFactor { id } => {
            if accounts.second_factor_remove(actor, &id).await? {
                println!("two-step sign-in is off for {id}; its sessions are ended");
            } else {
                println!("{id} has no two-step sign-in; nothing changed");
            }
        }
        AccountsCommand::ResetLink { id } => {
            let link = tools
                .resets
                .link_for(actor, &id)
                .await
                .map_err(|e| match e {
                    ResetError::NotFound => anyhow::anyhow!("no account {id}"),
                    e => anyhow::Error::new(e).context("making a reset link"),
                })?;
            println!("{link}");
        }
    }
    Ok(())
}

/// `--key-scope RESOURCE=SCOPE[,SCOPE…]` values as an allowance. The resource ends at the last `=`, so an
/// identifier may hold one (a scope may not).
fn parse_key_scopes(values: &[String]) -> anyhow::Result<KeyScopes> {
    let mut out = KeyScopes::new();
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
