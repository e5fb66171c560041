//! The real client address: the TCP peer, unless that peer is a proxy the operator trusts.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName};

use super::cidr::CidrSet;
use super::Error;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Which header a trusted proxy uses to name the client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`: a chain of hops, walked from the right.
    #[default]
    XForwardedFor,
    /// A header holding one address (`CF-Connecting-IP`, `X-Real-IP`, ...).
    Single(HeaderName),
}

impl ClientIpHeader {
    pub fn parse(name: &str) -> Result<ClientIpHeader, Error> {
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| Error::HeaderName(name.to_string()))?;
        Ok(if name == "x-forwarded-for" {
            ClientIpHeader::XForwardedFor
        } else {
            ClientIpHeader::Single(name)
        })
    }
}

/// Resolves the visitor's address. Headers are read only when the peer is trusted; anything
/// unparsable in them falls back to the peer address rather than guessing.
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &CidrSet,
    source: &ClientIpHeader,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    match source {
        ClientIpHeader::Single(name) => headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_hop)
            .unwrap_or(peer),
        ClientIpHeader::XForwardedFor => walk_forwarded_for(peer, headers, trusted),
    }
}

fn walk_forwarded_for(peer: IpAddr, headers: &HeaderMap, trusted: &CidrSet) -> IpAddr {
    let mut client = peer;
    // Several X-Forwarded-For lines form one list, in order.
    let lines = headers.get_all(&X_FORWARDED_FOR).iter().rev();
    for line in lines {
        let Ok(line) = line.to_str() else {
            return peer;
        };
        for hop in line.rsplit(',') {
            let Some(ip) = parse_hop(hop) else {
                return peer;
            };
            client = ip;
            if !trusted.contains(ip) {
                return ip;
            }
        }
    }
    // Every hop was trusted: the leftmost one is the closest we know to the client.
    client
}

/// One address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end]
            .parse::<IpAddr>()
            .ok()
            .map(|ip| ip.to_canonical());
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::cidr::Cidr;

    fn trusted() -> CidrSet {
        CidrSet::new(["127.0.0.1/32", "10.0.0.0/8"].map(|s| s.parse::<Cidr>().unwrap()))
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let h = xff(&["1.1.1.1"]);
        let got = client_ip(
            ip("8.8.8.8"),
            &h,
            &trusted(),
            &ClientIpHeader::XForwardedFor,
        );
        assert_eq!(got, ip("8.8.8.8"));
    }

    #[test]
    fn walks_from_the_right_skipping_trusted_hops() {
        let h = xff(&["6.6.6.6, 1.1.1.1", "10.0.0.2"]);
        let got = client_ip(
            ip("127.0.0.1"),
            &h,
            &trusted(),
            &ClientIpHeader::XForwardedFor,
        );
        assert_eq!(got, ip("1.1.1.1"));
    }

    #[test]
    fn garbage_falls_back_to_the_peer() {
        for bad in ["not-an-ip", "1.1.1.1, ,", "999.1.1.1", "\u{7f}"] {
            let mut h = HeaderMap::new();
            if let Ok(v) = bad.parse() {
                h.insert("x-forwarded-for", v);
            }
            let got = client_ip(
                ip("127.0.0.1"),
                &h,
                &trusted(),
                &ClientIpHeader::XForwardedFor,
            );
            assert_eq!(got, ip("127.0.0.1"), "{bad:?}");
        }
    }

    #[test]
    fn ports_and_brackets_and_single_headers() {
        let h = xff(&["[2001:db8::7]:443"]);
        let got = client_ip(
            ip("::ffff:127.0.0.1"),
            &h,
            &trusted(),
            &ClientIpHeader::XForwardedFor,
        );
        assert_eq!(got, ip("2001:db8::7"));
        let mut h = HeaderMap::new();
        h.insert("cf-connecting-ip", "5.6.7.8".parse().unwrap());
        let src = ClientIpHeader::parse("CF-Connecting-IP").unwrap();
        assert_eq!(
            client_ip(ip("10.1.1.1"), &h, &trusted(), &src),
            ip("5.6.7.8")
        );
        let h = xff(&["4.4.4.4:8080"]);
        let got = client_ip(
            ip("10.1.1.1"),
            &h,
            &trusted(),
            &ClientIpHeader::XForwardedFor,
        );
        assert_eq!(got, ip("4.4.4.4"));
    }
}
