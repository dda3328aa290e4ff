//! `keyward resources …`: create, list, and restore the admin resource.

use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{Output, print_rows};
use crate::service::Actor;
use crate::service::admin::{DurationValue, ResourceInput, resource_json};
use crate::toolkit::Toolkit;

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
        /// Every token for it must be DPoP-bound (RFC 9449).
        #[arg(long)]
        require_dpop: bool,
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

impl ResourcesCommand {
    /// Whether the command changes anything.
    pub(super) fn writes(&self) -> bool {
        !matches!(self, ResourcesCommand::List { .. })
    }
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

pub(super) async fn run(tools: &Toolkit, actor: &Actor, c: ResourcesCommand) -> anyhow::Result<()> {
    match c {
        ResourcesCommand::Create {
            identifier,
            name,
            scopes,
            access_token_ttl,
            signing_alg,
            require_dpop,
            out,
        } => {
            let input = ResourceInput {
                identifier,
                name,
                scopes,
                access_token_ttl: access_token_ttl.map(DurationValue::Text),
                signing_alg,
                scope_details: None,
                require_dpop: Some(require_dpop),
            };
            let row = tools.admin.resource_create(actor, input).await?;
            print_rows(&out, &json!([resource_json(&row)]), RESOURCE_COLUMNS);
        }
        ResourcesCommand::RestoreAdmin { out } => {
            let (row, changed) = tools.admin.admin_resource_restore(actor).await?;
            if !changed {
                eprintln!("the admin resource already has its scopes; nothing changed");
            }
            print_rows(&out, &json!([resource_json(&row)]), RESOURCE_COLUMNS);
        }
        ResourcesCommand::List { out } => {
            let rows: Vec<Value> = tools
                .admin
                .resources_list()
                .await?
                .iter()
                .map(resource_json)
                .collect();
            print_rows(&out, &json!(rows), RESOURCE_COLUMNS);
        }
    }
    Ok(())
}
