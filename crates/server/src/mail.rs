//! Email: `Mailer` (one SMTP transport built from `[smtp_*]` settings with lettre, rustls and the Mozilla roots
//! plus `extra_ca_file`) and `Outbox`, the delivery loop: the node holding the `mail` lease sends the due rows of
//! `mail_outbox`, at least once, retrying with backoff a bounded number of times. Bodies and links never reach
//! the logs.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::clock::Clock;
use crate::config::{Config, SmtpSecurity};
use crate::crypto::MasterKeys;
use crate::store::{MailRow, Store};

/// The outbox lease: one node of a cluster sends mail at a time. A node that stops renewing it is replaced
/// within this many seconds.
pub const MAIL_LEASE: &str = "mail";
const MAIL_LEASE_SECONDS: i64 = 15;

/// Attempts before a message is given up (the backoff makes this about a day).
pub const MAX_ATTEMPTS: i64 = 12;

/// Connecting, and each SMTP command, give up after this long.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Messages sent per round, so a round stays well inside the lease.
const PER_ROUND: i64 = 20;

/// The wait before attempt `n + 1` after `n` failed attempts: 2 s, 4 s, 8 s, … up to an hour.
pub fn backoff(attempts: i64) -> i64 {
    (2i64 << attempts.clamp(0, 20)).min(3600)
}

/// One SMTP transport and the `From` address.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// The mailer of `config`, or `None` without `smtp_url`.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Mailer>> {
        let Some(smtp) = &config.smtp else {
            return Ok(None);
        };
        let tls = || -> anyhow::Result<TlsParameters> {
            let mut b = TlsParameters::builder(smtp.host.clone());
            if let Some(path) = &config.extra_ca_file {
                for der in keyward_client::read_ca_file(path)
                    .map_err(|e| anyhow::anyhow!("extra_ca_file: {e}"))?
                {
                    b = b.add_root_certificate(Certificate::from_der(der.to_vec())?);
                }
            }
            Ok(b.build_rustls()?)
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .timeout(Some(SMTP_TIMEOUT))
            .tls(match smtp.security {
                SmtpSecurity::Implicit => Tls::Wrapper(tls()?),
                SmtpSecurity::StartTls => Tls::Required(tls()?),
                SmtpSecurity::Plain => Tls::None,
            });
        if let (Some(u), Some(p)) = (&smtp.username, &smtp.password) {
            builder =
                builder.credentials(Credentials::new(u.clone(), p.expose_secret().to_owned()));
        }
        let from = smtp
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("mail_from: {e}"))?;
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
        }))
    }

    /// Sends one plain-text message. The error is lettre's description (no body, no credentials).
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The delivery loop's parts.
pub struct Outbox {
    /// The outbox table and the lease.
    pub store: Store,
    /// Opens the sealed bodies.
    pub master: Arc<MasterKeys>,
    /// Due times and backoff.
    pub clock: Clock,
    /// The SMTP transport.
    pub mailer: Arc<Mailer>,
    /// This node, the lease's holder name.
    pub node_id: String,
}

impl Outbox {
    /// Every second: takes or renews the lease, then sends what is due. Runs until the task is dropped.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            self.round().await;
        }
    }

    /// Whether this node holds (or just took) the lease.
    async fn hold(&self) -> bool {
        match self
            .store
            .lease_acquire(
                MAIL_LEASE,
                &self.node_id,
                self.clock.now(),
                MAIL_LEASE_SECONDS,
            )
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::debug!(error = %e, "mail lease not taken");
                false
            }
        }
    }

    /// One round: the due messages, each sent once; the lease renewed before each, so a node that lost it
    /// stops.
    pub async fn round(&self) {
        if !self.hold().await {
            return;
        }
        let due = match self.store.mail_due(self.clock.now(), PER_ROUND).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "reading the mail outbox failed");
                return;
            }
        };
        for (i, m) in due.into_iter().enumerate() {
            if i > 0 && !self.hold().await {
                return;
            }
            self.deliver(m).await;
        }
    }

    /// Sends one message and records the attempt. Logged by id and recipient domain only.
    async fn deliver(&self, m: MailRow) {
        let domain = m.recipient.rsplit('@').next().unwrap_or("").to_owned();
        let result = match self.master.open(&m.body, &m.id) {
            Ok(body) => {
                self.mailer
                    .send(
                        &m.recipient,
                        &m.subject,
                        String::from_utf8_lossy(&body).into_owned(),
                    )
                    .await
            }
            Err(_) => Err("the body could not be opened (another master key?)".into()),
        };
        let now = self.clock.now();
        let attempts = m.attempts + 1;
        let recorded = match &result {
            Ok(()) => {
                tracing::info!(mail_id = %m.id, domain, attempts, "mail sent");
                self.store
                    .mail_attempted(&m.id, now, true, None, None)
                    .await
            }
            Err(e) => {
                let retry_at = (attempts < MAX_ATTEMPTS).then(|| now + backoff(m.attempts));
                if retry_at.is_some() {
                    tracing::warn!(mail_id = %m.id, domain, attempts, error = %e, "mail not sent; retried later");
                } else {
                    tracing::error!(mail_id = %m.id, domain, attempts, error = %e, "mail given up");
                }
                self.store
                    .mail_attempted(&m.id, now, false, retry_at, Some(e))
                    .await
            }
        };
        if let Err(e) = recorded {
            // The message stays due: at least once, so it may be sent again.
            tracing::warn!(mail_id = %m.id, error = %e, "recording a mail attempt failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), 2);
        assert_eq!(backoff(1), 4);
        assert_eq!(backoff(5), 64);
        assert_eq!(backoff(30), 3600);
    }
}
