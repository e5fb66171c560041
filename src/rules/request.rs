//! What the rules may read from the request itself, borrowed from it.

use std::borrow::Cow;

use http::header::{self, HeaderName};
use http::{HeaderMap, Method};

use crate::url::{percent_decode, query_pairs};

pub struct RequestFacts<'a> {
    pub method: &'a Method,
    /// The Host header (or URI authority), possibly with a port.
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The moment `schedule` conditions judge (Unix ms); `None` means now.
    pub at: Option<u64>,
    /// Set when a `rate` condition found the visitor over its rate.
    pub rate_limited: std::cell::Cell<bool>,
    /// What `unique` and `cap` ask: the live state, or what a test assumes it answers.
    pub state: std::cell::Cell<crate::state::View<'a>>,
    /// The TLS client's JA4 fingerprint; `None` on a plain listener.
    pub ja4: Option<&'a str>,
}

impl<'a> RequestFacts<'a> {
    /// A header's value when it is valid text.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The same for a name known in advance (no name to parse per request).
    pub fn header_named(&self, name: &HeaderName) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn user_agent(&self) -> Option<&'a str> {
        self.header_named(&header::USER_AGENT)
    }

    pub fn referer(&self) -> Option<&'a str> {
        self.header_named(&header::REFERER)
    }

    /// The host without port, as sent (compare case-insensitively).
    pub fn hostname(&self) -> &'a str {
        strip_port(self.host)
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        query_pairs(self.query?)
            .find(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
    }

    pub fn has_param(&self, name: &str) -> bool {
        self.query
            .is_some_and(|q| query_pairs(q).any(|(k, _)| k == name))
    }

    /// The primary subtag of the visitor's preferred language (`en` of `en-US,de;q=0.8`).
    pub fn primary_language(&self) -> Option<&'a str> {
        let first = self
            .header_named(&header::ACCEPT_LANGUAGE)?
            .split(',')
            .next()?;
        let tag = first.split(';').next()?.trim();
        let primary = tag.split(['-', '_']).next()?.trim();
        (!primary.is_empty() && primary != "*").then_some(primary)
    }
}

pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        // More than one `:` without brackets is an IPv6 address (as `canonical_host` gives
        // it), not a host and a port: `::1` is not `::` on port 1.
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The host a request names, as campaigns match it: without its port, without the one
/// trailing dot DNS allows (`promo.example.com.` is `promo.example.com`). `None` for what
/// no client may send: a port that is not a number below 65536, or characters no host has.
pub fn canonical_host(raw: &str) -> Option<&str> {
    let (host, port) = match raw.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            v6.parse::<std::net::Ipv6Addr>().ok()?;
            return match after {
                "" => Some(v6),
                p => valid_port(p.strip_prefix(':')?).then_some(v6),
            };
        }
        None => match raw.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        },
    };
    if port.is_some_and(|p| !valid_port(p)) {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    ok.then_some(host)
}

fn valid_port(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_matched_without_its_port_and_trailing_dot_and_a_bad_one_is_refused() {
        assert_eq!(
            canonical_host("promo.example.com."),
            Some("promo.example.com")
        );
        assert_eq!(
            canonical_host("Promo.example.com:8080"),
            Some("Promo.example.com")
        );
        assert_eq!(canonical_host("[::1]:8080"), Some("::1"));
        assert_eq!(canonical_host("promo.example.com:abc"), None);
        assert_eq!(canonical_host("promo.example.com:99999"), None);
        assert_eq!(canonical_host("promo.example.com:"), None);
        assert_eq!(canonical_host("a b"), None);
        assert_eq!(canonical_host(""), None);
        assert_eq!(canonical_host("[zz]"), None);
        assert_eq!(canonical_host("x:1:2"), None);
    }

    #[test]
    fn hosts_and_languages() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("[::1]:8080"), "::1");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("2001:db8::8080"), "2001:db8::8080");
        let mut headers = HeaderMap::new();
        headers.insert(
            "accept-language",
            "de-CH,de;q=0.9,en;q=0.8".parse().unwrap(),
        );
        let facts = RequestFacts {
            method: &Method::GET,
            host: "x",
            path: "/",
            query: Some("gclid=abc&utm_source=x%20y&flag"),
            headers: &headers,
            at: None,
            rate_limited: Default::default(),
            state: Default::default(),
            ja4: None,
        };
        assert_eq!(facts.primary_language(), Some("de"));
        assert_eq!(facts.param("utm_source").as_deref(), Some("x y"));
        assert!(facts.has_param("flag"));
        assert!(!facts.has_param("fbclid"));
    }
}
