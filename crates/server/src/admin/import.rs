//! `keyward clients import`: many clients at once, each with the secret it already has (a migration from another
//! system keeps its integrators' credentials working). Every line is checked as `POST /admin/v1/clients` checks a
//! client; everything is written in one transaction, with one audit entry and one change that makes every node
//! reload its clients. Any bad line fails the whole import, naming the line, and nothing is written.

use std::collections::HashMap;
use std::io::BufRead;

use serde_json::{Value, json};

use super::{Actor, ClientInput, new_client};
use crate::app::App;
use crate::crypto::random_id;
use crate::error::ApiError;
use crate::store::{NewClient, SecretRow, StoreError};

/// Lines checked and written together; bounds the memory an import needs whatever its size.
const CHUNK: usize = 10_000;

/// An imported secret's length bounds (SECURITY.md): long enough not to be guessed, short enough for any header.
const IMPORTED_SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// Checks a secret brought from another system: 16 to 256 visible ASCII characters, so that it can travel in
/// a Basic header or a form unchanged and is not trivially guessable.
fn check_imported_secret(secret: &str) -> Result<(), String> {
    if !IMPORTED_SECRET_LEN.contains(&secret.len()) {
        return Err("client_secret: must be 16 to 256 characters".into());
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("client_secret: only visible ASCII characters, no spaces".into());
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
    Ok((input, secret))
}

fn at_line(n: usize, e: ApiError) -> ApiError {
    match e {
        ApiError::Plain {
            status,
            code,
            message,
        } => ApiError::Plain {
            status,
            code,
            message: format!("line {n}: {message}"),
        },
        e => e,
    }
}

impl App {
    /// Imports clients from JSON Lines (blank lines skipped); returns how many. All or nothing.
    pub async fn clients_import(
        &self,
        actor: &Actor,
        lines: impl BufRead,
    ) -> Result<usize, ApiError> {
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
            let line = line.map_err(|e| ApiError::bad_request(format!("line {n}: {e}")))?;
            if !line.trim().is_empty() {
                let (input, secret) =
                    parse_line(&line).map_err(|m| at_line(n, ApiError::bad_request(m)))?;
                let client = new_client(input, &catalogue, now).map_err(|e| at_line(n, e))?;
                if let Some(first) = seen.insert(client.row.id.clone(), n) {
                    return Err(ApiError::bad_request(format!(
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
            return Err(ApiError::bad_request("the import holds no clients"));
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
) -> Result<(), ApiError> {
    tx.clients_insert_many(clients).await.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::Plain {
            status: axum::http::StatusCode::CONFLICT,
            code: "conflict",
            message:
                "client_id: a client with one of these ids exists already; nothing was imported"
                    .into(),
        },
        e => e.into(),
    })?;
    tx.secrets_insert_many(secrets).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_need_an_id_and_a_usable_secret() {
        let ok = parse_line(r#"{"client_id":"a","name":"A","client_secret":"0123456789abcdef"}"#);
        assert_eq!(
            ok.map(|(i, s)| (i.client_id, s)).ok(),
            Some((Some("a".into()), "0123456789abcdef".into()))
        );
        for (line, expect) in [
            (
                r#"{"name":"A","client_secret":"0123456789abcdef"}"#,
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
                r#"{"client_id":"a","nmae":"A","client_secret":"0123456789abcdef"}"#,
                "unknown field",
            ),
            ("[1]", "not a JSON object"),
            ("{", "not a JSON object"),
        ] {
            let err = parse_line(line).err().unwrap_or_default();
            assert!(err.contains(expect), "{line}: {err}");
        }
    }
}
