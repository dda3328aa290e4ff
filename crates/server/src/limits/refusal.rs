//! Which limit refused a request (`Limit`, the metric's label) and the refusal itself (`Refusal`: `Retry-After` and
//! the 429's description).

use keyward_core::limit::Window;

use crate::config::Endpoint;

/// Which limit refused a request: the `limit` label of `keyward_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Requests per client, by endpoint.
    Client(Endpoint),
    /// Requests per source address, by endpoint.
    Address(Endpoint),
    /// Tokens per client per window.
    Quota(Window),
    /// Failed authentications of one client id.
    FailedClient,
    /// Failed authentications from one address.
    FailedAddress,
}

impl Limit {
    /// Every limit, in label order.
    pub const ALL: [Limit; 10] = [
        Limit::Client(Endpoint::Token),
        Limit::Client(Endpoint::Introspect),
        Limit::Client(Endpoint::Revoke),
        Limit::Address(Endpoint::Token),
        Limit::Address(Endpoint::Introspect),
        Limit::Address(Endpoint::Revoke),
        Limit::Quota(Window::Hour),
        Limit::Quota(Window::Day),
        Limit::FailedClient,
        Limit::FailedAddress,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Limit::Client(Endpoint::Token) => "token_client",
            Limit::Client(Endpoint::Introspect) => "introspect_client",
            Limit::Client(Endpoint::Revoke) => "revoke_client",
            Limit::Address(Endpoint::Token) => "token_address",
            Limit::Address(Endpoint::Introspect) => "introspect_address",
            Limit::Address(Endpoint::Revoke) => "revoke_address",
            Limit::Quota(Window::Hour) => "quota_hour",
            Limit::Quota(Window::Day) => "quota_day",
            Limit::FailedClient => "failed_auth_client",
            Limit::FailedAddress => "failed_auth_address",
        }
    }

    pub(super) fn index(self) -> usize {
        Limit::ALL.iter().position(|l| *l == self).unwrap_or(0)
    }
}

/// A request refused by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Which limit.
    pub limit: Limit,
    /// Whole seconds until a retry can succeed (`Retry-After`).
    pub retry_after: u64,
}

impl Refusal {
    /// The `error_description` of the 429.
    pub fn message(&self) -> String {
        match self.limit {
            Limit::Quota(w) => format!(
                "the client's token quota for this {} is spent; retry after {} s",
                w.name(),
                self.retry_after
            ),
            Limit::FailedClient | Limit::FailedAddress => format!(
                "too many failed authentications; retry after {} s",
                self.retry_after
            ),
            _ => format!("rate limit reached; retry after {} s", self.retry_after),
        }
    }
}
