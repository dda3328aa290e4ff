//! The wall clock, read in one place (the workspace lint forbids it elsewhere).

/// Unix seconds now.
#[allow(clippy::disallowed_methods)] // The one place the verifier reads the wall clock.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The wall clock, for reading an HTTP-date `Retry-After` when the answer carries no `Date`.
#[allow(clippy::disallowed_methods)] // As above.
pub(crate) fn wall() -> std::time::SystemTime {
    std::time::SystemTime::now()
}
