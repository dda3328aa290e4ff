//! A second factor for sign-in (issue 23): an authenticator app (TOTP, RFC 6238) set up from the console by
//! scanning or typing its secret and confirming with a code, ten one-time recovery codes shown once, and the check
//! at sign-in. Adding or removing the factor signs out every other session; removing it needs the password.

use std::sync::Arc;

use keyward_core::totp;
use serde_json::json;

use super::Actor;
use super::sessions::verify_password;
use crate::clock::Clock;
use crate::crypto::{MasterKeys, hotp, random};
use crate::store::{Store, StoreError};

/// How many recovery codes an account gets.
pub const RECOVERY_CODES: usize = 10;

/// Second factors: setting them up, removing them, checking them.
pub struct SecondFactors {
    /// Factors, recovery codes, sessions, the audit log.
    pub store: Store,
    /// Seals the secrets, digests the recovery codes.
    pub master: Arc<MasterKeys>,
    /// Where time comes from (the code's time step).
    pub clock: Clock,
    /// The issuer shown in the authenticator app.
    pub label: String,
}

/// Why a second-factor operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    /// The code (or recovery code) is wrong, used, or the factor is not being set up.
    #[error("That code is not right. Type the current code from your authenticator app.")]
    WrongCode,
    /// The password given to remove the factor is wrong.
    #[error("The password is not right.")]
    WrongPassword,
    /// A factor is set up already.
    #[error("An authenticator app is set up already: remove it first.")]
    Already,
    /// The account has no second factor.
    #[error("No authenticator app is set up.")]
    None,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing or opening the secret failed.
    #[error("{0}")]
    Internal(String),
}

impl super::Outcome for FactorError {
    fn refusal(&self) -> Option<super::Refusal> {
        match self {
            Self::WrongCode | Self::WrongPassword => Some(super::Refusal::Invalid),
            Self::Already => Some(super::Refusal::Conflict),
            Self::None => Some(super::Refusal::NotFound),
            Self::Store(_) | Self::Internal(_) => None,
        }
    }
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// A factor being set up: what the authenticator app needs.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// The secret in base32 (RFC 4648), as apps take it typed.
    pub secret: String,
    /// The `otpauth://totp/…` URI apps take from a QR code.
    pub uri: String,
}

/// RFC 4648 base32 without padding: how authenticator apps take a secret.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn percent(text: &str) -> String {
    keyward_core::form::encode_component(text).replace('+', "%20")
}

impl SecondFactors {
    fn aad(account_id: &str) -> String {
        format!("totp\0{account_id}")
    }

    /// Starts setting up an authenticator app (a new secret each time, until confirmed).
    pub async fn begin(&self, account_id: &str, email: &str) -> Result<Enrolment, FactorError> {
        let secret = random::<20>();
        let sealed = self
            .master
            .seal(&secret, &Self::aad(account_id))
            .map_err(|e| FactorError::Internal(e.to_string()))?;
        let mut tx = self.store.begin().await?;
        match tx.factor_begin(account_id, &sealed, self.clock.now()).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(FactorError::Already),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        let secret = base32(&secret);
        let uri = format!(
            "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={}&period={}",
            percent(&self.label),
            percent(email),
            percent(&self.label),
            totp::DIGITS,
            totp::PERIOD
        );
        Ok(Enrolment { secret, uri })
    }

    /// The step of the window a code matches under the account's secret, if any.
    async fn matching_step(
        &self,
        account_id: &str,
        code: u32,
    ) -> Result<Option<(i64, bool)>, FactorError> {
        let Some(row) = self.store.factor_of(account_id).await? else {
            return Ok(None);
        };
        let secret = self
            .master
            .open(&row.totp_secret, &Self::aad(account_id))
            .map_err(|e| FactorError::Internal(e.to_string()))?;
        let step =
            totp::steps_to_try(self.clock.now()).find(|&s| hotp(&secret, s, totp::DIGITS) == code);
        Ok(step.map(|s| (s, row.confirmed_at.is_some())))
    }

    /// Confirms the app being set up with a code from it: returns the recovery codes (shown once). Every other
    /// session of the account ends (`keep` is the cookie digest of this browser's).
    pub async fn confirm(
        &self,
        actor: &Actor,
        account_id: &str,
        typed: &str,
        keep: &[u8],
    ) -> Result<Vec<String>, FactorError> {
        let code = totp::read_code(typed).ok_or(FactorError::WrongCode)?;
        let Some((step, false)) = self.matching_step(account_id, code).await? else {
            return Err(FactorError::WrongCode);
        };
        let codes: Vec<String> = (0..RECOVERY_CODES)
            .map(|_| {
                let c = base32(&random::<8>()).to_ascii_lowercase();
                format!("{}-{}", &c[..6], &c[6..12])
            })
            .collect();
        let digests: Vec<Vec<u8>> = codes
            .iter()
            .map(|c| self.master.digest(c).to_vec())
            .collect();
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if !tx.factor_confirm(account_id, step, &digests, now).await? {
            return Err(FactorError::WrongCode);
        }
        tx.sessions_end_others(account_id, keep).await?;
        tx.audit(
            &actor.entry(
                "account.second_factor.add",
                account_id,
                json!({"kind": "totp"}),
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// Removes the account's authenticator app, after checking its password; every other session ends.
    pub async fn remove(
        &self,
        actor: &Actor,
        account_id: &str,
        password: &str,
        keep: &[u8],
    ) -> Result<(), FactorError> {
        let account = self.store.account_get(account_id).await?;
        if !verify_password(password.to_owned(), Some(account.password_hash)).await {
            return Err(FactorError::WrongPassword);
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if !tx.factor_remove(account_id).await? {
            return Err(FactorError::None);
        }
        tx.sessions_end_others(account_id, keep).await?;
        tx.audit(
            &actor.entry(
                "account.second_factor.remove",
                account_id,
                json!({"kind": "totp"}),
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the account signs in with a second factor (a confirmed app).
    pub async fn required(&self, account_id: &str) -> Result<bool, FactorError> {
        Ok(self
            .store
            .factor_of(account_id)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some()))
    }

    /// Checks a code typed at sign-in: a current code from the app (each time step accepted once), or an unused
    /// recovery code (spent).
    pub async fn check(&self, account_id: &str, typed: &str) -> Result<(), FactorError> {
        if let Some(code) = totp::read_code(typed) {
            if let Some((step, true)) = self.matching_step(account_id, code).await? {
                if self.store.factor_use_step(account_id, step).await? {
                    return Ok(());
                }
            }
            return Err(FactorError::WrongCode);
        }
        // Recovery codes are looked up by their keyed digest, so the comparison tells a guesser nothing.
        let digest = self
            .master
            .digest(typed.trim().to_ascii_lowercase().as_str());
        if self
            .store
            .recovery_code_use(account_id, &digest, self.clock.now())
            .await?
        {
            Ok(())
        } else {
            Err(FactorError::WrongCode)
        }
    }
}
