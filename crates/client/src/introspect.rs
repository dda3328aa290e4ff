//! RFC 7662 introspection for routes that must honour revocation at once: Keyward is asked about each token,
//! and its answer (active or not) is cached briefly, keyed by a SHA-256 of the token, never past the token's `exp`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA256, digest};
use keyward_core::basic;

use crate::claims::{Claims, VerifyError};
use crate::fetch::{self, HttpClient};

/// Most answers kept; past it, expired ones are dropped, and if none are, the cache starts over.
const MAX_ENTRIES: usize = 10_000;

/// A cached answer: until when, and the claims of an active token (`None`: not active).
type Answer = (Instant, Option<Claims>);

pub(crate) struct Introspector {
    authorization: String,
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], Answer>>,
}

impl Introspector {
    pub(crate) fn new(client_id: String, client_secret: String, ttl: Duration) -> Self {
        Introspector {
            authorization: basic::encode(&client_id, &client_secret),
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The claims of an active token, or `invalid_token`.
    pub(crate) async fn check(
        &self,
        http: &HttpClient,
        uri: &str,
        token: &str,
        timeout: Duration,
        now: i64,
    ) -> Result<Claims, VerifyError> {
        let key: [u8; 32] = digest(&SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| VerifyError::Unavailable)?;
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, answer)| answer.clone());
        let answer = match cached {
            Some(answer) => answer,
            None => {
                let body = format!("token={}", basic::form_encode(token));
                let fetched =
                    fetch::json(http, uri, Some((self.authorization.clone(), body)), timeout)
                        .await
                        .map_err(|e| {
                            tracing::warn!(error = %e, "keyward-client: introspection failed");
                            VerifyError::Unavailable
                        })?;
                let active = fetched.body.get("active") == Some(&serde_json::Value::Bool(true));
                let answer = if active {
                    Some(serde_json::from_value::<Claims>(fetched.body).map_err(|_| {
                        VerifyError::Invalid("introspection answer lacks claims".into())
                    })?)
                } else {
                    None
                };
                self.remember(key, &answer, now);
                answer
            }
        };
        match answer {
            Some(claims) if claims.exp + keyward_core::jwt::LEEWAY_SECONDS > now => Ok(claims),
            Some(_) => Err(VerifyError::Invalid("token expired".into())),
            None => Err(VerifyError::Invalid("token is not active".into())),
        }
    }

    fn remember(&self, key: [u8; 32], answer: &Option<Claims>, now: i64) {
        let mut ttl = self.ttl;
        if let Some(c) = answer {
            let left = u64::try_from(c.exp - now).unwrap_or(0);
            ttl = ttl.min(Duration::from_secs(left));
        }
        let now_i = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, (until, _)| *until > now_i);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (now_i + ttl, answer.clone()));
    }
}
