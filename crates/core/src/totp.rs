//! One-time passwords for a second factor (RFC 4226 HOTP, RFC 6238 TOTP) as arithmetic: the time step of a moment,
//! the steps a code is checked against (the current one and one each side, for clocks a little apart), the dynamic
//! truncation of an HMAC into a code, and the rule that a step once used is never accepted again. The HMAC-SHA-1
//! itself is the server's (aws-lc-rs, `crypto::hotp`).

/// RFC 6238 §4: the time step, seconds (what authenticator apps use).
pub const PERIOD: i64 = 30;
/// Digits in a code (what authenticator apps show).
pub const DIGITS: u32 = 6;
/// Steps accepted on each side of the current one (RFC 6238 §5.2 recommends at most one).
pub const SKEW: i64 = 1;

/// The time step of `unix` (RFC 6238 §4.2: `floor((T - T0) / X)`, T0 = 0).
pub fn step(unix: i64) -> i64 {
    unix.div_euclid(PERIOD)
}

/// The steps a code given at `unix` is checked against, oldest first.
pub fn steps_to_try(unix: i64) -> impl Iterator<Item = i64> {
    let now = step(unix);
    (now - SKEW)..=(now + SKEW)
}

/// RFC 4226 §5.3: the code an HMAC-SHA-1 of the counter truncates to, `digits` long (6 to 9).
pub fn truncate(hmac: &[u8; 20], digits: u32) -> u32 {
    let offset = usize::from(hmac[19] & 0x0f);
    let binary = (u32::from(hmac[offset]) & 0x7f) << 24
        | u32::from(hmac[offset + 1]) << 16
        | u32::from(hmac[offset + 2]) << 8
        | u32::from(hmac[offset + 3]);
    binary % 10u32.pow(digits.clamp(6, 9))
}

/// Reads a code as typed: digits only, spaces allowed between them (apps show `123 456`).
pub fn read_code(typed: &str) -> Option<u32> {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != DIGITS as usize || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// RFC 6238 §5.2: a code of `step` is accepted only when it is later than the last step used, so an intercepted
/// code cannot be replayed within its window.
pub fn fresh(step: i64, last_used: Option<i64>) -> bool {
    last_used.is_none_or(|last| step > last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_the_window() {
        assert_eq!(step(59), 1);
        assert_eq!(step(-1), -1);
        assert_eq!(steps_to_try(60).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(fresh(5, None) && fresh(5, Some(4)) && !fresh(5, Some(5)) && !fresh(4, Some(5)));
    }

    #[test]
    fn rfc_4226_truncation_example() {
        // RFC 4226 §5.4: the HMAC of the example, and its 6-digit code.
        let hmac = [
            0x1f, 0x86, 0x98, 0x69, 0x0e, 0x02, 0xca, 0x16, 0x61, 0x85, 0x50, 0xef, 0x7f, 0x19,
            0xda, 0x8e, 0x94, 0x5b, 0x55, 0x5a,
        ];
        assert_eq!(truncate(&hmac, 6), 872_921);
    }

    #[test]
    fn codes_are_read_as_typed() {
        assert_eq!(read_code("123456"), Some(123_456));
        assert_eq!(read_code(" 123 456 "), Some(123_456));
        assert_eq!(read_code("012345"), Some(12_345));
        for bad in ["12345", "1234567", "12a456", "", "１２３４５６"] {
            assert_eq!(read_code(bad), None, "{bad}");
        }
    }
}
