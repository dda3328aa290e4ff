//! `keyward clients …`: create, list, show, disable, enable, delete, rotate a secret, import.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;

use super::output::{Output, TABLE, print_fields, print_rows, print_shell};
use super::{PAGE, every_page};
use crate::service::Actor;
use crate::service::admin::{ClientInput, DurationValue};
use crate::toolkit::Toolkit;

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
        #[command(flatten)]
        keys: KeyArgs,
        /// Print `CLIENT_ID=…` and `CLIENT_SECRET=…` lines for `eval` in a POSIX shell.
        #[arg(long, conflicts_with = "json")]
        shell: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Replace a client's public keys, JWKS URL or federated credentials, or set whether its tokens must be
    /// DPoP-bound (rotation: give the new key and the old one, then the new one alone).
    SetKeys {
        /// Client id.
        id: String,
        #[command(flatten)]
        keys: KeyArgs,
        /// Whether every access token it gets must be DPoP-bound.
        #[arg(long, value_name = "BOOL")]
        dpop_bound: Option<bool>,
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

impl ClientsCommand {
    /// Whether the command changes anything.
    pub(super) fn writes(&self) -> bool {
        !matches!(
            self,
            ClientsCommand::List { .. } | ClientsCommand::Show { .. }
        )
    }
}

/// A client's keys on the command line. With any of the first three on `create`, the client authenticates by
/// `private_key_jwt` alone and gets no secret.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// A file holding its public keys: a JWK Set (`{"keys": [...]}`) or one JWK, each with a `kid`.
    #[arg(long, value_name = "FILE")]
    jwks_file: Option<PathBuf>,
    /// An https URL publishing its JWK Set, fetched and cached by the server.
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    /// A federated credential as JSON (repeatable): `{"name": "deploy", "issuer":
    /// "https://token.actions.githubusercontent.com", "audience": "...", "claims": {"repository": "acme/shop"}}`.
    #[arg(long = "federated", value_name = "JSON")]
    federated: Vec<String>,
    /// Every access token it gets must be DPoP-bound (RFC 9449).
    #[arg(long = "require-dpop")]
    require_dpop: bool,
}

impl KeyArgs {
    /// Whether any key source is given.
    fn any(&self) -> bool {
        self.jwks_file.is_some() || self.jwks_uri.is_some() || !self.federated.is_empty()
    }

    /// Writes the keys given into `input`.
    fn apply(self, input: &mut ClientInput) -> anyhow::Result<()> {
        if let Some(file) = &self.jwks_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let doc: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            // One JWK is taken as a set of one.
            let set = if doc.get("keys").is_some() {
                doc
            } else {
                json!({ "keys": [doc] })
            };
            input.jwks = Some(Some(set));
        }
        if let Some(uri) = self.jwks_uri {
            input.jwks_uri = Some(Some(uri));
        }
        if !self.federated.is_empty() {
            let list = self
                .federated
                .iter()
                .map(|f| {
                    serde_json::from_str(f)
                        .with_context(|| format!("--federated {f}: not a credential"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            input.federated_credentials = Some(list);
        }
        if self.require_dpop {
            input.dpop_bound_access_tokens = Some(true);
        }
        Ok(())
    }
}

/// What `clients show` prints of a client, in this order, before its secrets.
const CLIENT_FIELDS: &[&str] = &[
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
    "jwks_uri",
    "dpop_bound_access_tokens",
    "created_at",
];

pub(super) async fn run(tools: &Toolkit, actor: &Actor, c: ClientsCommand) -> anyhow::Result<()> {
    let admin = &tools.admin;
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
            keys,
            shell,
            out,
        } => {
            let keyed = keys.any();
            let mut input = ClientInput {
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
                token_endpoint_auth_method: keyed.then(|| "private_key_jwt".to_owned()),
                ..ClientInput::default()
            };
            keys.apply(&mut input)?;
            let (view, secret) = admin.client_create(actor, input).await?;
            let Some(secret) = secret else {
                if out.json {
                    println!("{}", serde_json::to_string_pretty(&json!(view))?);
                } else if keyed {
                    println!(
                        "client_id: {}\n\nIt has no secret: it authenticates with private_key_jwt.",
                        view.client_id
                    );
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
            let all = every_page(
                |after| async move { admin.clients_list(&after, None, PAGE as i64).await },
                |c| c.client_id.clone(),
            )
            .await?;
            print_rows(
                &out,
                &json!(all),
                &["client_id", "name", "enabled", "resources", "scopes"],
            );
        }
        ClientsCommand::Show { id, out } => {
            let view = admin.client_get(&id).await?;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                let v = json!(view);
                print_fields(&v, CLIENT_FIELDS, 17);
                println!("secrets:");
                print_rows(
                    TABLE,
                    &v["secrets"],
                    &["id", "hint", "created_at", "expires_at", "last_used_at"],
                );
            }
        }
        ClientsCommand::SetKeys {
            id,
            keys,
            dpop_bound,
            out,
        } => {
            let mut input = ClientInput {
                dpop_bound_access_tokens: dpop_bound,
                ..ClientInput::default()
            };
            keys.apply(&mut input)?;
            let view = admin.client_update(actor, &id, input).await?;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_fields(&json!(view), CLIENT_FIELDS, 17);
            }
        }
        ClientsCommand::Disable { id } => {
            admin.client_set_enabled(actor, &id, false).await?;
            println!("disabled {id}");
        }
        ClientsCommand::Enable { id } => {
            admin.client_set_enabled(actor, &id, true).await?;
            println!("enabled {id}");
        }
        ClientsCommand::Delete { id } => {
            admin.client_delete(actor, &id).await?;
            println!("deleted {id}");
        }
        ClientsCommand::Import { file } => {
            let count = if file.as_os_str() == "-" {
                admin.clients_import(actor, std::io::stdin().lock()).await?
            } else {
                let f = std::fs::File::open(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                admin
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
            let made = admin
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
