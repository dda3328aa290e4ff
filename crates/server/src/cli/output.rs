//! How admin commands print: `--json`, aligned tables of chosen columns, and credentials as shell assignments.

use clap::Args;
use serde_json::Value;

/// Output format flag.
#[derive(Debug, Args)]
pub struct Output {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A table: an aligned table, never JSON (the parts of a `show` that are lists).
pub(super) const TABLE: &Output = &Output { json: false };

/// Prints credentials as POSIX shell assignments, single-quoted so any client id is safe to `eval`.
pub(super) fn print_shell(id: &str, secret: &str) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    println!("CLIENT_ID={}\nCLIENT_SECRET={}", quote(id), quote(secret));
}

/// A value as one table cell: `-` for null, arrays space-separated.
pub(super) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(" "),
        v => v.to_string(),
    }
}

/// Prints `keys` of the object `v`, one a line, names padded to `width`.
pub(super) fn print_fields(v: &Value, keys: &[&str], width: usize) {
    for k in keys {
        println!("{k:width$} {}", cell(&v[*k]));
    }
}

/// Prints rows as JSON or as an aligned table of `columns`.
pub(super) fn print_rows(out: &Output, rows: &Value, columns: &[&str]) {
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

/// A service's error as the CLI has always said it: a refusal as `code: words` with the admin API's code
/// (`not_found: client not found`), an unreachable database as `database unavailable`, a failed query under
/// `database query`; anything else as it is.
pub(super) fn said(e: anyhow::Error) -> anyhow::Error {
    use crate::service::accounts::AccountError;
    use crate::service::admin::AdminError;
    use crate::service::api_keys::KeyError;
    use crate::service::consents::ConsentError;
    use crate::service::{Outcome, Refusal, store_refusal};
    use crate::store::StoreError;

    let outcome: Option<&dyn Outcome> = None
        .or_else(|| e.downcast_ref::<AdminError>().map(|x| x as &dyn Outcome))
        .or_else(|| e.downcast_ref::<AccountError>().map(|x| x as &dyn Outcome))
        .or_else(|| e.downcast_ref::<ConsentError>().map(|x| x as &dyn Outcome))
        .or_else(|| e.downcast_ref::<KeyError>().map(|x| x as &dyn Outcome))
        .or_else(|| e.downcast_ref::<StoreError>().map(|x| x as &dyn Outcome));
    let Some(outcome) = outcome else {
        return e;
    };
    let code = |r: Refusal| match r {
        Refusal::Invalid => "invalid_request",
        Refusal::NotFound => "not_found",
        Refusal::Conflict => "conflict",
    };
    if let Some(store) = outcome.store_error() {
        return match store_refusal(store) {
            Some((r, words)) => anyhow::anyhow!("{}: {words}", code(r)),
            None if matches!(store, StoreError::Unavailable(_)) => {
                anyhow::anyhow!("database unavailable")
            }
            None => e.context("database query"),
        };
    }
    match outcome.refusal() {
        Some(r) => anyhow::anyhow!("{}: {outcome}", code(r)),
        None => e,
    }
}
