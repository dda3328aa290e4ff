//! First start and declared resources: the admin resource, an admin client (its secret shown once) and a signing
//! key per algorithm, made once by whichever node starts first; then the resources the configuration declares.

use std::collections::BTreeSet;

use keyward_core::client::{AuthMethod, GrantType};
use keyward_core::resource::{ADMIN_READ_SCOPE, ADMIN_RESOURCE, ADMIN_SCOPE, SigningAlg};

use crate::config::Config;
use crate::crypto::MasterKeys;
use crate::keys;
use crate::service::Actor;
use crate::service::admin::{ClientInput, ResourceInput};
use crate::store::{Store, StoreError};

/// The admin client created on first start; its secret is shown once.
#[derive(Debug)]
pub struct FirstStart {
    /// Admin client id.
    pub client_id: String,
    /// Admin client secret.
    pub client_secret: String,
}

/// How far back the first signing keys are made active.
const FIRST_KEYS_BACKDATED: i64 = 86_400;

/// First start: in one transaction, claims the `bootstrapped` marker, then creates the admin resource, an admin
/// client and a signing key per algorithm. Nodes starting together do it once.
pub(crate) async fn bootstrap(
    store: &Store,
    master: &MasterKeys,
    now: i64,
) -> anyhow::Result<Option<FirstStart>> {
    if store.meta_get("bootstrapped").await?.is_some() {
        return Ok(None);
    }
    let mut tx = store.begin().await?;
    if !tx.meta_claim("bootstrapped", &now.to_string()).await? {
        return Ok(None);
    }
    let actor = Actor::system();
    for alg in SigningAlg::ALL {
        // The first keys sign from a day back: nothing was published before them, and a node whose time is
        // behind the first node's still has a key to sign with.
        let row = keys::generate(alg, master, now, now - FIRST_KEYS_BACKDATED)?;
        tx.key_insert(&row).await?;
    }
    tx.change("key", "*", now).await?;
    let resource = ResourceInput {
        identifier: ADMIN_RESOURCE.into(),
        name: "Keyward admin API".into(),
        scopes: vec![ADMIN_SCOPE.into(), ADMIN_READ_SCOPE.into()],
        access_token_ttl: None,
        signing_alg: None,
        scope_details: None,
        require_dpop: None,
    };
    crate::service::admin::resource_create_in(&mut tx, &actor, resource, 3_600, now)
        .await
        .map_err(anyhow::Error::msg)?;
    let client = ClientInput {
        name: Some("admin".into()),
        grant_types: Some(vec![GrantType::ClientCredentials.to_string()]),
        auth_methods: Some(AuthMethod::ALL.iter().map(ToString::to_string).collect()),
        resources: Some(vec![ADMIN_RESOURCE.into()]),
        scopes: Some(vec![ADMIN_SCOPE.into()]),
        ..ClientInput::default()
    };
    let resources = std::collections::HashMap::from([(
        ADMIN_RESOURCE.to_owned(),
        vec![ADMIN_SCOPE.to_owned(), ADMIN_READ_SCOPE.to_owned()],
    )]);
    let (view, secret) =
        crate::service::admin::client_create_in(&mut tx, master, &actor, client, &resources, now)
            .await
            .map_err(anyhow::Error::msg)?;
    tx.commit().await?;
    Ok(Some(FirstStart {
        client_id: view.client_id,
        client_secret: secret.ok_or_else(|| anyhow::anyhow!("the admin client has no secret"))?,
    }))
}

/// Creates the resources the configuration declares and the database lacks, each in its own transaction. A
/// declared resource that exists is left as it is (the admin API may have changed it since); a difference from
/// the configuration is logged. Nodes starting together may race to create one: the loser finds it created.
pub(crate) async fn declare_resources(
    store: &Store,
    config: &Config,
    now: i64,
) -> anyhow::Result<()> {
    let actor = Actor::config();
    for input in &config.resources {
        match store.resource_get(&input.identifier).await {
            Ok(existing) => {
                let existing_scopes: BTreeSet<&str> = existing.scopes.split_whitespace().collect();
                let declared_scopes: BTreeSet<&str> =
                    input.scopes.iter().map(String::as_str).collect();
                let mut differs = existing.name != input.name || existing_scopes != declared_scopes;
                if let Some(alg) = &input.signing_alg {
                    differs |= !existing.signing_alg.eq_ignore_ascii_case(alg);
                }
                if let Some(ttl) = &input.access_token_ttl {
                    differs |=
                        ttl.raw_seconds("access_token_ttl").ok() != Some(existing.access_token_ttl);
                }
                if differs {
                    tracing::warn!(
                        identifier = %input.identifier,
                        "a declared resource differs from the database; the database's version is kept"
                    );
                }
                continue;
            }
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let mut tx = store.begin().await?;
        let created = crate::service::admin::resource_create_in(
            &mut tx,
            &actor,
            input.clone(),
            config.max_access_token_ttl,
            now,
        )
        .await;
        match created {
            Ok(_) => {
                tx.commit().await?;
                tracing::info!(identifier = %input.identifier, "created a declared resource");
            }
            Err(crate::service::admin::AdminError::Conflict(_)) => {}
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "declared resource {:?}: {e}",
                    input.identifier
                ));
            }
        }
    }
    Ok(())
}

/// Prints the first-start admin credentials, the only time the secret is shown.
pub fn print_first_start(first: &FirstStart) {
    let rule = "=".repeat(72);
    eprintln!(
        "\n{rule}\nKeyward first start: an admin client was created (scope {ADMIN_SCOPE}).\n\n  client_id:     {}\n  client_secret: {}\n\nThis secret is SHOWN ONCE and cannot be recovered. Store it now.\n{rule}\n",
        first.client_id, first.client_secret
    );
}
