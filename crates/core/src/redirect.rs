//! Redirect URIs (RFC 6749 §3.1.2, RFC 9700 §2.1, §4.1): what may be registered, and how a presented one is
//! matched. Matching is by exact string against the registered list (the port aside for `http` on a loopback IP
//! literal, RFC 8252 §7.3), so no near miss (trailing slash, case, an extra query, `user@host`, encoded dots) ever
//! matches; registration refuses what could not be safe.

/// The longest redirect URI accepted.
pub const MAX_LEN: usize = 2_000;

/// Checks a redirect URI at registration: absolute, `https`, or `http` on a loopback host (RFC 8252 §7.3); no
/// fragment (RFC 6749 §3.1.2), no wildcard, no userinfo, no dot segments, no whitespace or control characters.
/// `javascript:`, `data:` and every other scheme are refused.
pub fn check_registration(uri: &str) -> Result<(), String> {
    if uri.is_empty() || uri.len() > MAX_LEN {
        return Err(format!("a redirect URI must be 1 to {MAX_LEN} characters"));
    }
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "redirect URI {uri:?}: spaces, control and non-ASCII characters are not allowed (percent-encode them)"
        ));
    }
    if uri.contains('#') {
        return Err(format!("redirect URI {uri:?}: a fragment is not allowed"));
    }
    if uri.contains('*') {
        return Err(format!("redirect URI {uri:?}: wildcards are not allowed"));
    }
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| format!("redirect URI {uri:?}: must be an absolute https URL"))?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(format!(
            "redirect URI {uri:?}: userinfo (user@host) is not allowed"
        ));
    }
    let host = host_of(authority)
        .ok_or_else(|| format!("redirect URI {uri:?}: the host is missing or malformed"))?;
    match scheme {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(format!(
                "redirect URI {uri:?}: http is allowed only on a loopback host (127.0.0.1, [::1], localhost)"
            ));
        }
        _ => {
            return Err(format!(
                "redirect URI {uri:?}: the scheme must be https (or http on a loopback host)"
            ));
        }
    }
    let path = path_and_query.split('?').next().unwrap_or("");
    let lowered = path.to_ascii_lowercase();
    if lowered
        .split('/')
        .any(|seg| matches!(seg, "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."))
        || lowered.contains("%2f")
        || lowered.contains("%5c")
        || path.contains('\\')
    {
        return Err(format!(
            "redirect URI {uri:?}: dot segments and encoded slashes are not allowed in the path"
        ));
    }
    Ok(())
}

/// The host of an authority (`host[:port]`, `[v6][:port]`), lower-case letters, digits, `-` and `.` only for
/// names; `None` when malformed.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inner, after) = v6.split_once(']')?;
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return None;
        }
        (&authority[..inner.len() + 2], after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let name_ok = host.starts_with('[')
        || (!host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
    name_ok.then_some(host)
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
}

/// RFC 6749 §3.1.2.3, RFC 9700 §4.1.3: a presented redirect URI is accepted only when it equals a registered one,
/// byte for byte; except that for a registered `http` URI on a loopback IP literal (`127.0.0.1` or `[::1]`) the
/// port is ignored (RFC 8252 §7.3: a native app listens on whatever port the system gives it). Path and query
/// are still compared exactly, and `localhost`, `127.0.0.1` and `[::1]` stay three different hosts.
pub fn is_registered(registered: &[String], presented: &str) -> bool {
    registered.iter().any(|r| {
        r == presented
            || loopback_without_port(r)
                .is_some_and(|reg| loopback_without_port(presented) == Some(reg))
    })
}

/// For `http://127.0.0.1[:port]REST` or `http://[::1][:port]REST`, the URI with the port taken out
/// (`("http://127.0.0.1", REST)`); `None` for anything else, `localhost` included (RFC 8252 §8.3 prefers the IP
/// literals, which no DNS or hosts file can redirect).
fn loopback_without_port(uri: &str) -> Option<(&str, &str)> {
    for host in ["http://127.0.0.1", "http://[::1]"] {
        let Some(rest) = uri.strip_prefix(host) else {
            continue;
        };
        let rest = match rest.strip_prefix(':') {
            Some(port_and_rest) => {
                let end = port_and_rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(port_and_rest.len());
                // A port is 1 to 5 digits, and what follows it starts the path or the query (or nothing).
                if !(1..=5).contains(&end) {
                    return None;
                }
                &port_and_rest[end..]
            }
            None => rest,
        };
        return match rest.as_bytes().first() {
            None | Some(b'/' | b'?') => Some((host, rest)),
            // `http://127.0.0.1.evil.example/`, `http://127.0.0.1@evil.example/`: another host.
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration() {
        for ok in [
            "https://app.example/callback",
            "https://app.example:8443/cb?tenant=1",
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
            "http://localhost:3000/",
            "https://app.example",
        ] {
            check_registration(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "javascript:alert(1)",
            "data:text/html,hi",
            "http://app.example/cb",
            "https://app.example/cb#frag",
            "https://*.app.example/cb",
            "https://user@app.example/cb",
            "https://app.example@evil.example/cb",
            "https://app.example/a/../cb",
            "https://app.example/%2e%2e/cb",
            "https://app.example/a%2fb",
            "https://App.Example/cb",
            "https://app.example/c b",
            "/relative/cb",
            "custom.scheme:/cb",
            "https://app.example:/cb",
            "https:///cb",
        ] {
            assert!(check_registration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn exact_match_only() {
        let reg = vec!["https://app.example/cb".to_owned()];
        assert!(is_registered(&reg, "https://app.example/cb"));
        for near in [
            "https://app.example/cb/",
            "https://APP.example/cb",
            "https://app.example/CB",
            "https://app.example/cb?x=1",
            "https://app.example/cb@evil.example",
            "https://app.example@evil.example/cb",
            "https://app.example/cb/%2e%2e/x",
            "https://app.example/%63b",
            "https://app.example:443/cb",
        ] {
            assert!(!is_registered(&reg, near), "{near} matched");
        }
    }

    #[test]
    fn loopback_ip_literals_match_any_port() {
        let reg = vec![
            "http://127.0.0.1:8080/cb".to_owned(),
            "http://[::1]/cb?x=1".to_owned(),
            "http://localhost:3000/cb".to_owned(),
        ];
        for ok in [
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:51234/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:1/cb?x=1",
            "http://[::1]:65535/cb?x=1",
            "http://localhost:3000/cb",
        ] {
            assert!(is_registered(&reg, ok), "{ok} refused");
        }
        for bad in [
            // Path and query stay exact.
            "http://127.0.0.1:51234/cb/",
            "http://127.0.0.1:51234/CB",
            "http://127.0.0.1:51234/cb?x=1",
            "http://[::1]:51234/cb",
            "http://[::1]:51234/cb?x=2",
            // The three loopback names stay distinct.
            "http://[::1]:8080/cb",
            "http://localhost:8080/cb",
            "http://localhost:51234/cb",
            "http://127.0.0.1:51234/cb?x=1",
            // Nothing else is loosened.
            "https://127.0.0.1:8080/cb",
            "http://127.0.0.2:8080/cb",
            "http://127.0.0.1.evil.example:8080/cb",
            "http://127.0.0.1:8080@evil.example/cb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:123456/cb",
            "http://127.0.0.1:80a/cb",
        ] {
            assert!(!is_registered(&reg, bad), "{bad} matched");
        }
    }
}
