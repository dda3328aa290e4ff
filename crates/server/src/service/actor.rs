//! Who makes a change and from where: the admin API's client, an account holder in the console, the CLI, the
//! configuration or first start. Every service that writes records it in the audit log.

use crate::store::NewAudit;

/// Who makes a change, and from where (for the audit log).
#[derive(Debug, Clone)]
pub struct Actor {
    /// `client:<id>`, `cli` or `system`.
    pub who: String,
    /// Peer address, `cli` or `system`.
    pub source: String,
}

impl Actor {
    /// First start.
    pub fn system() -> Self {
        Actor {
            who: "system".into(),
            source: "system".into(),
        }
    }
    /// The configuration file (declared resources).
    pub fn config() -> Self {
        Actor {
            who: "config".into(),
            source: "config".into(),
        }
    }
    /// The command line.
    pub fn cli() -> Self {
        Actor {
            who: "cli".into(),
            source: "cli".into(),
        }
    }
    /// An admin API caller.
    pub fn client(id: &str, source: String) -> Self {
        Actor {
            who: format!("client:{id}"),
            source,
        }
    }
    /// Whether this is the admin API caller authenticated as client `id`.
    pub fn is_client(&self, id: &str) -> bool {
        self.who.strip_prefix("client:") == Some(id)
    }
    /// Someone signing in as an account, not yet known to be its holder (a failed sign-in), from `source`.
    pub fn sign_in(source: String) -> Self {
        Actor {
            who: "sign-in".into(),
            source,
        }
    }
    /// An account holder (the console), or an operator acting through the console's operator pages.
    pub fn account(id: &str, source: String) -> Self {
        Actor {
            who: format!("account:{id}"),
            source,
        }
    }
    /// The audit entry of a change this actor makes.
    pub fn entry<'a>(
        &'a self,
        action: &'a str,
        target: &'a str,
        detail: serde_json::Value,
    ) -> NewAudit<'a> {
        NewAudit {
            actor: &self.who,
            source: &self.source,
            action,
            target,
            detail: detail.to_string(),
        }
    }
}
