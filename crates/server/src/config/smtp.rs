//! The email settings (`smtp_url`, `smtp_username`, `smtp_password` or `smtp_password_file`, `mail_from`) checked
//! into `SmtpConfig`. Without `smtp_url`, no email is sent and the features that need it say so.

use secrecy::SecretString;

use super::value::text;
use super::{ConfigError, invalid};

/// How the connection to the SMTP server is protected, from the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    Implicit,
    /// `smtp+starttls://`: plain, then STARTTLS, which must succeed (port 587 by default).
    StartTls,
    /// `smtp://`: no TLS at all (port 25 by default); only for a relay on loopback or a private network.
    Plain,
}

/// Where and how email is sent.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The server's host name (checked against its certificate with TLS).
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// TLS mode.
    pub security: SmtpSecurity,
    /// AUTH user name, when the server wants one.
    pub username: Option<String>,
    /// AUTH password.
    pub password: Option<SecretString>,
    /// The `From` address of every message.
    pub from: String,
}

/// Reads the SMTP keys: `None` when `smtp_url` is absent (then the others must be absent too, so a half-written
/// setting is noticed).
pub(super) fn check(
    url: Option<toml::Value>,
    username: Option<toml::Value>,
    password: Option<toml::Value>,
    password_file: Option<toml::Value>,
    from: Option<toml::Value>,
) -> Result<Option<SmtpConfig>, ConfigError> {
    let url = text("smtp_url", url)?;
    let username = text("smtp_username", username)?;
    let password = text("smtp_password", password)?;
    let password_file = text("smtp_password_file", password_file)?;
    let from = text("mail_from", from)?;
    let Some(url) = url else {
        if username.is_some() || password.is_some() || password_file.is_some() || from.is_some() {
            return Err(invalid(
                "smtp_url",
                "must be set when another smtp_* key or mail_from is",
            ));
        }
        return Ok(None);
    };
    const EXPECTED: &str =
        "expected smtps://HOST[:PORT], smtp+starttls://HOST[:PORT] or smtp://HOST[:PORT]";
    let (security, rest, default_port) = if let Some(r) = url.strip_prefix("smtps://") {
        (SmtpSecurity::Implicit, r, 465)
    } else if let Some(r) = url.strip_prefix("smtp+starttls://") {
        (SmtpSecurity::StartTls, r, 587)
    } else if let Some(r) = url.strip_prefix("smtp://") {
        (SmtpSecurity::Plain, r, 25)
    } else {
        return Err(invalid("smtp_url", EXPECTED));
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '@', '?', '#', ' ']) {
        return Err(invalid("smtp_url", EXPECTED));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid("smtp_url", EXPECTED))?,
        ),
        _ => (rest, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid("smtp_url", EXPECTED));
    }
    let password = match (password, password_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "smtp_password",
                "set smtp_password or smtp_password_file, not both",
            ));
        }
        (Some(p), None) => Some(p),
        (None, Some(f)) => Some(
            std::fs::read_to_string(&f)
                .map_err(|e| invalid("smtp_password_file", format!("cannot read {f}: {e}")))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        (None, None) => None,
    };
    if password.is_some() != username.is_some() {
        return Err(invalid(
            "smtp_username",
            "smtp_username and a password go together",
        ));
    }
    let from = from.ok_or_else(|| invalid("mail_from", "must be set with smtp_url"))?;
    let at = from.find('@').unwrap_or(0);
    if at == 0 || at + 1 >= from.len() || from.contains([' ', '<', '>', '\r', '\n']) {
        return Err(invalid(
            "mail_from",
            "expected an address such as keyward@example.com",
        ));
    }
    Ok(Some(SmtpConfig {
        host: host.to_owned(),
        port,
        security,
        username,
        password: password.map(SecretString::from),
        from,
    }))
}
