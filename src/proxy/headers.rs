//! What crosses flowgate between visitor and upstream: hop-by-hop headers stop here (RFC 9110
//! §7.6.1), forwarding headers are flowgate's own, and the framing is one valid value.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Request, Uri, Version};

use super::body::Body;

/// Headers that describe one connection, never the message.
fn hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name == header::PROXY_AUTHENTICATE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Names listed in `Connection` besides the usual tokens: hop-by-hop by the sender's word.
fn listed_in_connection(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(name.as_str()))
        })
    })
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// The visitor asked to switch protocols (WebSocket): `Connection: upgrade` and `Upgrade`.
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

/// What flowgate adds for the upstream: values built once per request.
pub struct Forwarding {
    pub forwarded_for: HeaderValue,
    pub real_ip: HeaderValue,
    pub click_id: HeaderValue,
    /// The upstream's `host:` override, if any.
    pub host: Option<HeaderValue>,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_CLICK_ID: HeaderName = HeaderName::from_static("x-click-id");

/// The request for the upstream: the visitor's method and end-to-end headers, the route's
/// target, flowgate's forwarding headers, one `Content-Length` if the body has one.
pub fn upstream_request(
    parts: &Parts,
    target: &Uri,
    fwd: &Forwarding,
    upgrade: bool,
    body: Body,
) -> Request<Body> {
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 4);
    let has_connection = parts.headers.contains_key(header::CONNECTION);
    for (name, value) in &parts.headers {
        if hop_by_hop(name)
            || name == header::CONTENT_LENGTH
            || name == X_FORWARDED_FOR
            || name == X_REAL_IP
            || name == X_CLICK_ID
            || (name == header::HOST && fwd.host.is_some())
            || (has_connection && listed_in_connection(&parts.headers, name))
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    if let Some(host) = &fwd.host {
        headers.insert(header::HOST, host.clone());
    }
    if parts.headers.contains_key(header::CONTENT_LENGTH) {
        if let Some(n) = hyper::body::Body::size_hint(&body).exact() {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    if upgrade {
        if let Some(u) = parts.headers.get(header::UPGRADE) {
            headers.insert(header::UPGRADE, u.clone());
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
    }
    headers.insert(X_FORWARDED_FOR.clone(), fwd.forwarded_for.clone());
    headers.insert(X_REAL_IP.clone(), fwd.real_ip.clone());
    headers.insert(X_CLICK_ID.clone(), fwd.click_id.clone());
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = target.clone();
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    req
}

/// Strips the upstream's hop-by-hop headers from its response, in place. A `101` keeps the
/// two that say what the connection becomes.
pub fn clean_response(headers: &mut HeaderMap, switching: bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !matches!(n.as_str(), "close" | "keep-alive" | "upgrade"))
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::PROXY_AUTHENTICATE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    if !switching {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(raw: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri("/lp");
        for (k, v) in raw {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn fwd() -> Forwarding {
        Forwarding {
            forwarded_for: HeaderValue::from_static("1.2.3.4"),
            real_ip: HeaderValue::from_static("1.2.3.4"),
            click_id: HeaderValue::from_static("id"),
            host: None,
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
        ]);
        let req = upstream_request(
            &p,
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
        assert_eq!(req.uri(), "/safe/lp");
    }

    #[test]
    fn a_listed_content_length_goes_upstream_as_one_value() {
        let p = parts(&[("content-length", "5, 5")]);
        let body = Body::bytes(bytes::Bytes::from_static(b"hello"));
        let req = upstream_request(&p, &"/".parse().unwrap(), &fwd(), false, body);
        let all: Vec<_> = req.headers().get_all("content-length").iter().collect();
        assert_eq!(all, vec!["5"]);
    }

    #[test]
    fn an_upgrade_keeps_its_two_headers_only_when_asked_for() {
        let p = parts(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_upgrade(&p.headers));
        let req = upstream_request(&p, &"/".parse().unwrap(), &fwd(), true, Body::empty());
        assert_eq!(req.headers()["upgrade"], "websocket");
        assert_eq!(req.headers()["connection"], "upgrade");
        let mut resp = HeaderMap::new();
        resp.insert("connection", HeaderValue::from_static("upgrade"));
        resp.insert("upgrade", HeaderValue::from_static("websocket"));
        clean_response(&mut resp, false);
        assert!(resp.is_empty());
    }
}
