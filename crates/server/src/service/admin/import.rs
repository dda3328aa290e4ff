//! `keyward clients import`: many clients at once, each with the secret it already has (a migration from another
//! system keeps its integrators' credentials working). Every line is checked as `POST /admin/v1/clients` checks a
//! client; everything is written in one transaction, with one audit entry and one change that makes every node
//! reload its clients. Any bad line fails the whole import, naming the line, and nothing is written.

use std::collections::HashMap;
use std::io::BufRead;

use serde_json::{Value, json};

use super::{Actor, Admin, AdminError, ClientInput, new_client};
use crate::crypto::random_id;
use crate::service::Invalid;
use crate::store::{NewClient, SecretRow, StoreError};

/// Lines checked and written together; bounds the memory an import needs whatever its size.
const CHUNK: usize = 10_000;

/// An imported secret's length bounds: short enough for any header.
const IMPORTED_SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// The least strength an imported secret must show by `estimated_bits` (SECURITY.md): secrets are kept as a fast
/// keyed digest, which is only sound for random secrets, so a low-entropy one is refused rather than stored.
const MIN_IMPORTED_BITS: f64 = 128.0;

/// A generous estimate of a secret's strength: its length times the bits of the smallest usual alphabet that
/// holds it (digits, hex, one-case letters and digits, base64, all visible ASCII). Over-estimates a secret a human
/// chose; it exists to refuse the obviously weak, not to certify the strong.
fn estimated_bits(secret: &str) -> f64 {
    let b = secret.as_bytes();
    let has = |f: fn(&u8) -> bool| b.iter().any(f);
    let alphabet = if b.iter().all(u8::is_ascii_digit) {
        10.0
    } else if b.iter().all(u8::is_ascii_hexdigit)
        && !(has(u8::is_ascii_lowercase) && has(u8::is_ascii_uppercase))
    {
        16.0
    } else if b.iter().all(u8::is_ascii_alphanumeric)
        && !(has(u8::is_ascii_lowercase) && has(u8::is_ascii_uppercase))
    {
        36.0
    } else if b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || b"-_+/=".contains(c))
    {
        64.0
    } else {
        94.0
    };
    b.len() as f64 * f64::log2(alphabet)
}

/// Checks a secret brought from another system: 16 to 256 visible ASCII characters (so that it travels in a Basic
/// header or a form unchanged), at least 8 different characters, and about 128 bits by `estimated_bits`.
fn check_imported_secret(secret: &str) -> Result<(), String> {
    if !IMPORTED_SECRET_LEN.contains(&secret.len()) {
        return Err("client_secret: must be 16 to 256 characters".into());
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("client_secret: only visible ASCII characters, no spaces".into());
    }
    let distinct = secret
        .bytes()
        .collect::<std::collections::HashSet<u8>>()
        .len();
    let bits = estimated_bits(secret);
    if distinct < 8 || bits < MIN_IMPORTED_BITS {
        return Err(format!(
            "client_secret: too weak to import (about {bits:.0} bits); secrets are kept as a fast digest, which \
             needs random ones of 128 bits or more, such as 32 hex or 22 base64 characters"
        ));
    }
    Ok(())
}

/// One line of an import file: a client as `POST /admin/v1/clients` takes it, with a required `client_id` and
/// `client_secret`.
fn parse_line(line: &str) -> Result<(ClientInput, String), String> {
    let mut v: Value = serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let secret = match v.as_object_mut().map(|o| o.remove("client_secret")) {
        None => return Err("not a JSON object".into()),
        Some(Some(Value::String(s))) => s,
        Some(Some(_)) => return Err("client_secret: expected a string".into()),
        Some(None) => return Err("client_secret: required".into()),
    };
    check_imported_secret(&secret)?;
    let input: ClientInput = serde_json::from_value(v).map_err(|e| e.to_string())?;
    if input.client_id.is_none() {
        return Err("client_id: required (an import keeps the ids integrators already use)".into());
    }
    if input.owner_account.is_some() {
        // An account's keys are made one by one (its limit, its names): the admin API or the console.
        return Err(
            "owner_account: not imported; give keys to an account with POST /admin/v1/clients"
                .into(),
        );
    }
    Ok((input, secret))
}

/// An error of line `n`, said so: `line 3: name: required`.
fn at_line(n: usize, e: AdminError) -> AdminError {
    match e {
        AdminError::Invalid(i) => {
            AdminError::Invalid(Invalid::new(format!("line {n}"), i.to_string()))
        }
        AdminError::Conflict(m) => AdminError::Conflict(format!("line {n}: {m}")),
        e @ (AdminError::NameTaken | AdminError::TooManyKeys) => {
            AdminError::Conflict(format!("line {n}: {e}"))
        }
        e => e,
    }
}

impl Admin {
    /// Imports clients from JSON Lines (blank lines skipped); returns how many. All or nothing.
    pub async fn clients_import(
        &self,
        actor: &Actor,
        lines: impl BufRead,
    ) -> Result<usize, AdminError> {
        let now = self.clock.now();
        let catalogue = self.catalogue().await?;
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut tx = self.store.begin().await?;
        let mut clients = Vec::with_capacity(CHUNK);
        let mut secrets = Vec::with_capacity(CHUNK);
        let mut count = 0;
        let mut lines = lines.lines().enumerate().peekable();
        while let Some((i, line)) = lines.next() {
            let n = i + 1;
            let line = line.map_err(|e| AdminError::invalid(format!("line {n}: {e}")))?;
            if !line.trim().is_empty() {
                let (input, secret) =
                    parse_line(&line).map_err(|m| at_line(n, AdminError::invalid(m)))?;
                let client = self
                    .with_default_resources(input, &catalogue)
                    .and_then(|input| new_client(input, &catalogue, now))
                    .map_err(|e| at_line(n, e))?;
                if let Some(first) = seen.insert(client.row.id.clone(), n) {
                    return Err(AdminError::invalid(format!(
                        "line {n}: client_id: the same id as line {first}"
                    )));
                }
                secrets.push(self.imported_secret(&client, &secret, now));
                clients.push(client);
            }
            if clients.len() == CHUNK || (lines.peek().is_none() && !clients.is_empty()) {
                count += clients.len();
                write_chunk(&mut tx, &clients, &secrets).await?;
                clients.clear();
                secrets.clear();
            }
        }
        if count == 0 {
            return Err(AdminError::invalid("the import holds no clients"));
        }
        tx.audit(
            &actor.entry("clients.import", "*", json!({ "count": count })),
            now,
        )
        .await?;
        tx.change("clients", "*", now).await?;
        self.finish(tx, "clients", "*").await?;
        Ok(count)
    }

    fn imported_secret(&self, client: &NewClient, secret: &str, now: i64) -> SecretRow {
        SecretRow {
            id: random_id("sec_"),
            client_id: client.row.id.clone(),
            digest: self.master.digest(secret).to_vec(),
            // Four characters at most: an imported secret has no public prefix of ours to show instead.
            hint: format!("{}…", &secret[..4]),
            created_at: now,
            expires_at: None,
            last_used_at: None,
        }
    }
}

async fn write_chunk(
    tx: &mut crate::store::Tx,
    clients: &[NewClient],
    secrets: &[SecretRow],
) -> Result<(), AdminError> {
    tx.clients_insert_many(clients).await.map_err(|e| match e {
        StoreError::Conflict(_) => AdminError::Conflict(
            "client_id: a client with one of these ids exists already; nothing was imported".into(),
        ),
        e => e.into(),
    })?;
    tx.secrets_insert_many(secrets).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_of_other_systems_pass_and_weak_ones_do_not() {
        for strong in [
            "9f86d081884c7d659a2feaa0c55ad015",         // 32 hex: 128 bits
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",         // a payment API's key shape
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", // an access key's secret shape
            "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA",           // 22+ base64
        ] {
            assert!(check_imported_secret(strong).is_ok(), "{strong}");
        }
        for weak in [
            "0123456789abcdef",
            "1234567890123456789012345678901234567",
            "correcthorsebattery",
        ] {
            assert!(check_imported_secret(weak).is_err(), "{weak}");
        }
    }

    #[test]
    fn lines_need_an_id_and_a_usable_secret() {
        let ok = parse_line(
            r#"{"client_id":"a","name":"A","client_secret":"9f86d081884c7d659a2feaa0c55ad015"}"#,
        );
        assert_eq!(
            ok.map(|(i, s)| (i.client_id, s)).ok(),
            Some((Some("a".into()), "9f86d081884c7d659a2feaa0c55ad015".into()))
        );
        for (line, expect) in [
            (
                r#"{"name":"A","client_secret":"9f86d081884c7d659a2feaa0c55ad015"}"#,
                "client_id: required",
            ),
            (r#"{"client_id":"a","name":"A"}"#, "client_secret: required"),
            (
                r#"{"client_id":"a","name":"A","client_secret":"short"}"#,
                "16 to 256",
            ),
            (
                r#"{"client_id":"a","name":"A","client_secret":"0123456789 abcdef"}"#,
                "visible ASCII",
            ),
            (
                r#"{"client_id":"a","name":"A","client_secret":7}"#,
                "expected a string",
            ),
            (
                r#"{"client_id":"a","nmae":"A","client_secret":"9f86d081884c7d659a2feaa0c55ad015"}"#,
                "unknown field",
            ),
            (
                r#"{"client_id":"a","name":"A","client_secret":"0123456789abcdef"}"#,
                "too weak",
            ),
            ("[1]", "not a JSON object"),
            ("{", "not a JSON object"),
        ] {
            let err = parse_line(line).err().unwrap_or_default();
            assert!(err.contains(expect), "{line}: {err}");
        }
    }
}
