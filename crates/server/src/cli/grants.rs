//! `keyward grants …`: list what accounts delegated to apps, revoke a grant.

use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{Output, print_rows};
use super::{PAGE, every_page};
use crate::service::Actor;
use crate::store::GrantFilter;
use crate::toolkit::Toolkit;

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

impl GrantsCommand {
    /// Whether the command changes anything.
    pub(super) fn writes(&self) -> bool {
        matches!(self, GrantsCommand::Revoke { .. })
    }
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

pub(super) async fn run(tools: &Toolkit, actor: &Actor, c: GrantsCommand) -> anyhow::Result<()> {
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
                live_at: live.then(|| tools.clock.now()),
                idle_ttl: tools.delegated.refresh_token_idle_ttl,
            };
            let filter = &filter;
            let all = every_page(
                |after| async move {
                    tools
                        .consents
                        .grants_list(filter, &after, PAGE as i64)
                        .await
                },
                |g| g.id.clone(),
            )
            .await?;
            let rows: Vec<Value> = all
                .iter()
                .map(|g| {
                    let mut v = json!(g);
                    v["refreshed_at"] = json!(g.refreshed_at);
                    v
                })
                .collect();
            print_rows(&out, &json!(rows), GRANT_COLUMNS);
        }
        GrantsCommand::Revoke { id } => {
            tools.consents.grant_revoke(actor, &id).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
