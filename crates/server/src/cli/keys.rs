//! `keyward keys …`: list signing keys with their state, rotate them.

use clap::Subcommand;
use serde_json::json;

use super::output::{Output, print_rows};
use crate::service::Actor;
use crate::toolkit::Toolkit;

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

impl KeysCommand {
    /// Whether the command changes anything.
    pub(super) fn writes(&self) -> bool {
        matches!(self, KeysCommand::Rotate { .. })
    }
}

pub(super) async fn run(tools: &Toolkit, actor: &Actor, c: KeysCommand) -> anyhow::Result<()> {
    match c {
        KeysCommand::List { out } => {
            let items = tools.admin.keys_list();
            print_rows(
                &out,
                &json!(items),
                &["kid", "alg", "state", "created_at", "activates_at"],
            );
        }
        KeysCommand::Rotate { alg, out } => {
            let made = tools.admin.keys_rotate(actor, alg.as_deref()).await?;
            print_rows(&out, &json!(made), &["kid", "alg", "activates_at"]);
        }
    }
    Ok(())
}
