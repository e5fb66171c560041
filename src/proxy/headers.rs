//! What crosses flowgate between visitor and upstream: hop-by-hop headers stop here (RFC 9110
//! §7.6.1), forwarding headers are flowgate's own, and the framing is one valid value.

use std::io::Write as _;
use std::net::IpAddr;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};

use super::body::Body;

/// Headers that describe one connection, never the message (RFC 9110 §7.6.1).
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Which of `HOP_BY_HOP` a header is; by length first, since every header of every request
/// and response is asked.
fn hop_index(name: &HeaderName) -> Option<usize> {
    let s = name.as_str();
    let i = match s.len() {
        2 => 2,
        7 if s == "trailer" => 3,
        7 => 4,
        10 if s == "connection" => 0,
        10 => 6,
        16 => 7,
        17 => 1,
        18 => 5,
        _ => return None,
    };
    (HOP_BY_HOP[i].as_str() == s).then_some(i)
}

/// `Connection` tokens that name no header.
fn plain_token(t: &str) -> bool {
    ["close", "keep-alive", "upgrade"]
        .iter()
        .any(|p| t.eq_ignore_ascii_case(p))
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// The visitor asked to switch to WebSocket: `Connection: upgrade` and `Upgrade: websocket`.
/// Nothing else goes through: `h2c` would hand the visitor an HTTP/2 channel to the upstream
/// past every rule.
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|u| u.to_str().ok())
        .is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket"))
        && connection_has(headers, "upgrade")
}

/// What flowgate adds for the upstream: values built once per request.
pub struct Forwarding {
    pub forwarded_for: HeaderValue,
    pub real_ip: HeaderValue,
    pub click_id: HeaderValue,
    /// The upstream's `host:` override, or an absolute-form target's authority.
    pub host: Option<HeaderValue>,
    /// The TCP peer is a trusted proxy: the forwarding headers it sent stand.
    pub trusted: bool,
    /// `client_ip_header` when it is a one-address header: set to the visitor's address.
    pub client_ip_header: Option<HeaderName>,
}

impl Forwarding {
    /// The values for a request from `peer` on behalf of `client`. `X-Forwarded-For` appends
    /// the address flowgate heard from to a trusted peer's chain; from an untrusted peer the
    /// chain is the visitor's own words and is replaced. The three values share one buffer,
    /// so they cost two allocations together, and the copy a replay keeps of them a
    /// reference count each.
    pub fn new(
        visitor: &HeaderMap,
        peer: IpAddr,
        trusted: bool,
        client: IpAddr,
        click_id: &str,
    ) -> Forwarding {
        let (mut peer_buf, mut client_buf) = ([0u8; 48], [0u8; 48]);
        let peer = write_ip(&mut peer_buf, peer);
        let client = write_ip(&mut client_buf, client);
        let chain = visitor.get_all(&X_FORWARDED_FOR);
        let chain_len = match trusted {
            true => chain.iter().map(|p| p.len() + 2).sum(),
            false => 0,
        };
        let mut buf =
            BytesMut::with_capacity(chain_len + peer.len() + client.len() + click_id.len());
        if trusted {
            for p in chain {
                buf.extend_from_slice(p.as_bytes());
                buf.extend_from_slice(b", ");
            }
        }
        buf.extend_from_slice(peer);
        let forwarded_for = buf.split();
        buf.extend_from_slice(client);
        let real_ip = buf.split();
        buf.extend_from_slice(click_id.as_bytes());
        let value = |b: BytesMut| {
            HeaderValue::from_maybe_shared(b.freeze()).unwrap_or(HeaderValue::from_static(""))
        };
        Forwarding {
            forwarded_for: value(forwarded_for),
            real_ip: value(real_ip),
            click_id: value(buf),
            host: None,
            trusted,
            client_ip_header: None,
        }
    }
}

/// `IpAddr`'s `Display` goes through the formatter a piece at a time; an IPv4 address, the
/// common case, is four numbers.
fn write_ip(buf: &mut [u8; 48], ip: IpAddr) -> &[u8] {
    let mut n = 0;
    match ip {
        IpAddr::V4(a) => {
            let mut num = itoa::Buffer::new();
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                let digits = num.format(octet).as_bytes();
                buf[n..n + digits.len()].copy_from_slice(digits);
                n += digits.len();
            }
        }
        IpAddr::V6(_) => {
            let mut cursor = &mut buf[..];
            let _ = write!(cursor, "{ip}");
            n = 48 - cursor.len();
        }
    }
    &buf[..n]
}

/// Forwarding headers only a trusted proxy may send on; from anyone else they are the
/// visitor's own claims and would mislead the servers behind flowgate.
static CLAIMS: [HeaderName; 3] = [
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_CLICK_ID: HeaderName = HeaderName::from_static("x-click-id");

/// The request for the upstream, made from the visitor's own header map: hop-by-hop headers
/// removed, flowgate's forwarding headers set, one `Content-Length` if the body has one.
pub fn upstream_request(
    method: &Method,
    mut headers: HeaderMap,
    target: &Uri,
    fwd: Forwarding,
    upgrade: bool,
    body: Body,
) -> Request<Body> {
    let upgrade_to = if upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    strip_hop_by_hop(&mut headers);
    if let Some(host) = fwd.host {
        headers.insert(header::HOST, host);
    }
    if headers.contains_key(header::CONTENT_LENGTH) {
        if let Some(n) = hyper::body::Body::size_hint(&body).exact() {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    if let Some(u) = upgrade_to {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if !fwd.trusted {
        for name in &CLAIMS {
            headers.remove(name);
        }
    }
    if let Some(name) = fwd.client_ip_header {
        headers.insert(name, fwd.real_ip.clone());
    }
    headers.insert(X_FORWARDED_FOR.clone(), fwd.forwarded_for);
    headers.insert(X_REAL_IP.clone(), fwd.real_ip);
    headers.insert(X_CLICK_ID.clone(), fwd.click_id);
    let mut req = Request::new(body);
    *req.method_mut() = method.clone();
    *req.uri_mut() = target.clone();
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    req
}

/// Removes, in place, the hop-by-hop headers and those `Connection` names. One pass finds
/// which are there, so the common request (only `Connection: keep-alive`) costs one removal.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = [false; HOP_BY_HOP.len()];
    let mut any = false;
    for name in headers.keys() {
        if let Some(i) = hop_index(name) {
            present[i] = true;
            any = true;
        }
    }
    if !any {
        return;
    }
    if present[0] {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty() && !plain_token(t))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for (name, here) in HOP_BY_HOP.iter().zip(present) {
        if here {
            headers.remove(name);
        }
    }
}

/// Strips the upstream's hop-by-hop headers from its response, in place. A `101` keeps the
/// two that say what the connection becomes.
pub fn clean_response(headers: &mut HeaderMap, switching: bool) {
    let kept = if switching {
        (
            headers.get(header::CONNECTION).cloned(),
            headers.get(header::UPGRADE).cloned(),
        )
    } else {
        (None, None)
    };
    strip_hop_by_hop(headers);
    if let (Some(c), Some(u)) = kept {
        headers.insert(header::CONNECTION, c);
        headers.insert(header::UPGRADE, u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(raw: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in raw {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn fwd() -> Forwarding {
        Forwarding {
            forwarded_for: HeaderValue::from_static("1.2.3.4"),
            real_ip: HeaderValue::from_static("1.2.3.4"),
            click_id: HeaderValue::from_static("id"),
            host: None,
            trusted: false,
            client_ip_header: Some(HeaderName::from_static("cf-connecting-ip")),
        }
    }

    #[test]
    fn addresses_are_written_as_their_display_form() {
        for ip in [
            "203.0.113.7",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8::1",
            "::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let f = Forwarding::new(&HeaderMap::new(), ip, false, ip, "c");
            assert_eq!(f.real_ip, ip.to_string().as_str());
            assert_eq!(f.forwarded_for, ip.to_string().as_str());
        }
    }

    #[test]
    fn a_trusted_peer_chain_is_extended_and_an_untrusted_one_replaced() {
        let h = parts(&[
            ("x-forwarded-for", "198.51.100.1, 10.0.0.2"),
            ("x-forwarded-for", "10.0.0.3"),
        ]);
        let (peer, client) = (
            "127.0.0.1".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        );
        let f = Forwarding::new(&h, peer, true, client, "019ad0f3");
        assert_eq!(
            f.forwarded_for,
            "198.51.100.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"
        );
        assert_eq!(f.real_ip, "198.51.100.1");
        assert_eq!(f.click_id, "019ad0f3");
        let f = Forwarding::new(&h, peer, false, peer, "019ad0f3");
        assert_eq!(f.forwarded_for, "127.0.0.1");
        assert_eq!(f.real_ip, "127.0.0.1");
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_stay_with_flowgate() {
        let p = parts(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("accept", "text/html"),
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-host", "evil.example"),
            ("cf-connecting-ip", "6.6.6.6"),
        ]);
        let req = upstream_request(
            &Method::GET,
            p,
            &"/safe/lp".parse().unwrap(),
            fwd(),
            false,
            Body::empty(),
        );
        let h = req.headers();
        assert!(h.get("connection").is_none() && h.get("keep-alive").is_none());
        assert!(h.get("x-secret").is_none() && h.get("te").is_none());
        assert_eq!(h["accept"], "text/html");
        assert_eq!(h["x-forwarded-for"], "1.2.3.4");
        assert!(h.get("forwarded").is_none() && h.get("x-forwarded-host").is_none());
        assert_eq!(h["cf-connecting-ip"], "1.2.3.4");
        assert_eq!(req.uri(), "/safe/lp");
    }

    #[test]
    fn every_hop_by_hop_name_is_known_by_its_index_and_no_other_is() {
        for (i, h) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_index(h), Some(i), "{h}");
        }
        for other in [
            "tf",
            "referer",
            "content-type",
            "x-forwarded-for",
            "proxy-authorization",
        ] {
            assert_eq!(hop_index(&HeaderName::from_static(other)), None, "{other}");
        }
    }

    #[test]
    fn a_listed_content_length_goes_upstream_as_one_value() {
        let p = parts(&[("content-length", "5, 5")]);
        let body = Body::bytes(bytes::Bytes::from_static(b"hello"));
        let req = upstream_request(&Method::GET, p, &"/".parse().unwrap(), fwd(), false, body);
        let all: Vec<_> = req.headers().get_all("content-length").iter().collect();
        assert_eq!(all, vec!["5"]);
    }

    #[test]
    fn an_upgrade_keeps_its_two_headers_only_when_asked_for() {
        let h2c = parts(&[("connection", "Upgrade"), ("upgrade", "h2c")]);
        assert!(!wants_upgrade(&h2c), "h2c is no upgrade flowgate passes on");
        let p = parts(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_upgrade(&p));
        let req = upstream_request(
            &Method::GET,
            p,
            &"/".parse().unwrap(),
            fwd(),
            true,
            Body::empty(),
        );
        assert_eq!(req.headers()["upgrade"], "websocket");
        assert_eq!(req.headers()["connection"], "upgrade");
        let mut resp = HeaderMap::new();
        resp.insert("connection", HeaderValue::from_static("upgrade"));
        resp.insert("upgrade", HeaderValue::from_static("websocket"));
        clean_response(&mut resp, false);
        assert!(resp.is_empty());
    }
}
