//! What crosses flowgate between visitor and upstream: hop-by-hop headers stop here (RFC 9110
//! §7.6.1), forwarding headers are flowgate's own, and the framing is one valid value.

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

/// Forwarding headers only a trusted proxy may send on; from anyone else they are the
/// visitor's own claims and would mislead the servers behind flowgate.
static CLAIMS: [HeaderName; 3] = [
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
];

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_CLICK_ID: HeaderName = HeaderName::from_static("x-click-id");

/// The request for the upstream, made from the visitor's own header map: hop-by-hop headers
/// removed, flowgate's forwarding headers set, one `Content-Length` if the body has one.
pub fn upstream_request(
    method: &Method,
    mut headers: HeaderMap,
    target: &Uri,
    fwd: &Forwarding,
    upgrade: bool,
    body: Body,
) -> Request<Body> {
    let upgrade_to = if upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    strip_hop_by_hop(&mut headers);
    if let Some(host) = &fwd.host {
        headers.insert(header::HOST, host.clone());
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
    if let Some(name) = &fwd.client_ip_header {
        headers.insert(name.clone(), fwd.real_ip.clone());
    }
    headers.insert(X_FORWARDED_FOR.clone(), fwd.forwarded_for.clone());
    headers.insert(X_REAL_IP.clone(), fwd.real_ip.clone());
    headers.insert(X_CLICK_ID.clone(), fwd.click_id.clone());
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
            &fwd(),
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
        let req = upstream_request(&Method::GET, p, &"/".parse().unwrap(), &fwd(), false, body);
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
            &fwd(),
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
