//! Who may ask the agent: the checks every request passes before token or proxy mode sees it. Requests over TCP
//! must come from `allowed_sources` and name the agent by an IP literal or `localhost` (a DNS-rebound name is
//! refused); no request may carry `X-Forwarded-For` or `Forwarded` (it was relayed, not sent by a local app) or
//! come from a browser page (`Origin`, or `Sec-Fetch-Site` saying another site). Token mode also needs
//! `Metadata-Flavor: Keyward`, checked in `token.rs`.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, Uri, header};
use keyward_core::net::Cidr;

/// How a request reached the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// TCP, from this peer.
    Tcp(SocketAddr),
    /// The Unix socket: only processes its file mode lets in can connect, and no browser can.
    Unix,
}

/// Refuses a request that an app on this host (or in `allowed`) would not send; the reason is for the 403.
pub(super) fn check(
    allowed: &[Cidr],
    via: Via,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), &'static str> {
    if let Via::Tcp(peer) = via {
        if !allowed.iter().any(|c| c.contains(peer.ip())) {
            return Err("requests from this address are not allowed (allowed_sources)");
        }
    }
    if headers.contains_key("x-forwarded-for") || headers.contains_key(header::FORWARDED) {
        return Err(
            "the request was forwarded (X-Forwarded-For or Forwarded): only local apps may ask",
        );
    }
    if headers.contains_key(header::ORIGIN) {
        return Err("requests from web pages (with an Origin header) are refused");
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.eq_ignore_ascii_case("cross-site") || v.eq_ignore_ascii_case("same-site")
        });
    if cross_site {
        return Err("requests from web pages (Sec-Fetch-Site) are refused");
    }
    if let Via::Tcp(_) = via {
        // Over TCP, the name the request was sent to must be one no DNS answer can point elsewhere.
        let host = match uri.authority() {
            Some(a) => Some(a.as_str()),
            None => headers.get(header::HOST).and_then(|v| v.to_str().ok()),
        };
        match host {
            None => return Err("the request has no Host header"),
            Some(h) if !local_host(h) => {
                return Err("Host must be an IP address or localhost (DNS rebinding)");
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Whether a `Host` value (`name[:port]`) names the agent without DNS: an IP literal or `localhost`.
fn local_host(value: &str) -> bool {
    let value = value.trim();
    // A bracketed IPv6 literal, with or without a port.
    if let Some(rest) = value.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, port)) => ip.parse::<std::net::Ipv6Addr>().is_ok() && port_part(port),
            None => false,
        };
    }
    let (host, port) = match value.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (value, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok && (host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok())
}

/// What may follow `]`: nothing, or `:` and a port.
fn port_part(rest: &str) -> bool {
    rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> Vec<Cidr> {
        vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn tcp(ip: &str) -> Via {
        Via::Tcp(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn hosts() {
        for ok in [
            "127.0.0.1:8931",
            "127.0.0.1",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8931",
            "[::1]",
            "10.0.0.7:80",
        ] {
            assert!(local_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:8931",
            "127.0.0.1.nip.io",
            "localhost.",
            "[::1]x",
            "127.0.0.1:",
            "",
            "[nope]:1",
        ] {
            assert!(!local_host(bad), "{bad}");
        }
    }

    #[test]
    fn refusals() {
        let uri: Uri = "/v1/token/a".parse().unwrap();
        let ok = headers(&[("host", "127.0.0.1:8931")]);
        assert!(check(&loopback(), tcp("127.0.0.1"), &uri, &ok).is_ok());
        assert!(check(&loopback(), tcp("::ffff:127.0.0.1"), &uri, &ok).is_ok());
        assert!(check(&loopback(), tcp("10.1.2.3"), &uri, &ok).is_err());
        for extra in [
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ] {
            let h = headers(&[("host", "127.0.0.1:8931"), extra]);
            assert!(
                check(&loopback(), tcp("127.0.0.1"), &uri, &h).is_err(),
                "{extra:?}"
            );
            assert!(
                check(&loopback(), Via::Unix, &uri, &h).is_err(),
                "{extra:?}"
            );
        }
        let rebound = headers(&[("host", "evil.example:8931")]);
        assert!(check(&loopback(), tcp("127.0.0.1"), &uri, &rebound).is_err());
        assert!(
            check(&loopback(), Via::Unix, &uri, &rebound).is_ok(),
            "no DNS on a socket"
        );
        assert!(check(&loopback(), tcp("127.0.0.1"), &uri, &HeaderMap::new()).is_err());
        let absolute: Uri = "http://evil.example/v1/token/a".parse().unwrap();
        assert!(check(&loopback(), tcp("127.0.0.1"), &absolute, &ok).is_err());
        let node = headers(&[("host", "localhost:8931"), ("sec-fetch-mode", "cors")]);
        assert!(
            check(&loopback(), tcp("127.0.0.1"), &uri, &node).is_ok(),
            "Node's fetch"
        );
    }
}
