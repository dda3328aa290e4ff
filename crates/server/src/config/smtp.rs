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

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<toml::Value> {
        Some(toml::Value::String(v.into()))
    }

    fn url(u: &str) -> Result<Option<SmtpConfig>, ConfigError> {
        check(s(u), None, None, None, s("keyward@example.com"))
    }

    #[test]
    fn the_scheme_names_the_security_and_the_default_port() {
        let c = url("smtps://mail.example.com").unwrap().unwrap();
        assert_eq!((c.security, c.port), (SmtpSecurity::Implicit, 465));
        let c = url("smtp+starttls://mail.example.com").unwrap().unwrap();
        assert_eq!((c.security, c.port), (SmtpSecurity::StartTls, 587));
        let c = url("smtp://127.0.0.1:2525").unwrap().unwrap();
        assert_eq!(
            (c.security, c.port, c.host.as_str()),
            (SmtpSecurity::Plain, 2525, "127.0.0.1")
        );
        let c = url("smtps://[::1]:465").unwrap().unwrap();
        assert_eq!(c.host, "::1");
    }

    #[test]
    fn bad_settings_name_their_key() {
        for bad in [
            "http://x",
            "smtp://",
            "smtp://u@host",
            "smtp://host:0",
            "smtp://host:x",
            "smtp://h/p",
        ] {
            assert!(
                url(bad).unwrap_err().to_string().contains("smtp_url"),
                "{bad}"
            );
        }
        let no_url = check(None, None, None, None, s("a@b.c")).unwrap_err();
        assert!(no_url.to_string().contains("smtp_url"));
        let no_from = check(s("smtp://h"), None, None, None, None).unwrap_err();
        assert!(no_from.to_string().contains("mail_from"));
        let bad_from = check(s("smtp://h"), None, None, None, s("nobody")).unwrap_err();
        assert!(bad_from.to_string().contains("mail_from"));
        let half = check(s("smtp://h"), s("user"), None, None, s("a@b.c")).unwrap_err();
        assert!(half.to_string().contains("smtp_username"));
        let both = check(s("smtp://h"), s("u"), s("p"), s("/f"), s("a@b.c")).unwrap_err();
        assert!(both.to_string().contains("smtp_password"));
        assert!(check(None, None, None, None, None).unwrap().is_none());
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let c = check(s("smtp://h"), s("u"), s("hunter2hunter2"), None, s("a@b.c"))
            .unwrap()
            .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
