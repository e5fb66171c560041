//! Hostile visitors, in raw bytes against the real binary and a recording upstream: a route's
//! path is the only place a visitor can land, and what reaches the upstream is one clear
//! request.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

fn rules(upstream: SocketAddr) -> String {
    format!(
        r#"
upstreams:
  landing: {{ peers: ["{upstream}"] }}
routes:
  offer: {{ proxy: {{ upstream: landing, path: /offer }} }}
  safe: {{ proxy: {{ upstream: landing, path: /safe }} }}
  admin: {{ respond: {{ status: 403, body: "no" }} }}
campaigns:
  - id: site
    match: {{ host: promo.example.com, path_prefix: / }}
    flows:
      - {{ name: everyone, to: safe }}
  - id: admin
    match: {{ host: promo.example.com, path_prefix: /admin/ }}
    flows:
      - {{ name: nobody, to: admin }}
"#
    )
}

/// What the upstream was asked for (its JSON echo), or `None` when flowgate answered itself.
fn upstream_target(r: &Reply) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| v["target"].as_str().map(String::from))
}

#[test]
fn a_visitor_routed_to_the_safe_page_cannot_climb_to_the_offer() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("", &rules(up.addr));
    for path in [
        "/../offer/lp",
        "/%2e%2e/offer/lp",
        "/.%2e/offer/lp",
        "/%2E%2E/offer/lp",
        "/%2e./offer/lp",
        "/lp/../../../offer/lp",
        "/./../offer/lp",
        "//../offer/lp",
    ] {
        let r = fg.get(path, &[("User-Agent", CHROME)]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            upstream_target(&r).as_deref(),
            Some("/safe/offer/lp"),
            "{path}"
        );
    }
    let r = fg.get("/lp?x=%2e%2e/1", &[("User-Agent", CHROME)]);
    assert_eq!(upstream_target(&r).as_deref(), Some("/safe/lp?x=%2e%2e/1"));
}

#[test]
fn a_campaign_prefix_cannot_be_dodged_by_spelling_the_path_differently() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("", &rules(up.addr));
    for path in [
        "/admin/s",
        "/x/../admin/s",
        "/%61dmin/s",
        "//admin/s",
        "/./admin/s",
    ] {
        let r = fg.get(path, &[("User-Agent", CHROME)]);
        assert_eq!((r.status, r.body.as_str()), (403, "no"), "{path}");
    }
    for path in ["/admin%2fs", "/admin%2Fs", "/a%5cb", "/a%00b", "/%zz"] {
        let r = fg.get(path, &[("User-Agent", CHROME)]);
        assert_eq!(r.status, 400, "{path}");
    }
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn the_host_must_be_there_and_be_a_host() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("", &rules(up.addr));
    let no_host = raw(
        fg.addr,
        "GET /admin/s HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&no_host), 400, "{no_host}");
    let bad_port = fg.get("/admin/s", &[("Host", "promo.example.com:abc")]);
    assert_eq!(bad_port.status, 400);
    let dotted = fg.get("/admin/s", &[("Host", "promo.example.com.")]);
    assert_eq!((dotted.status, dotted.body.as_str()), (403, "no"));
    let http10 = raw(fg.addr, "GET /admin/s HTTP/1.0\r\n\r\n");
    assert_eq!(
        status_of(&http10),
        404,
        "HTTP/1.0 without Host: no campaign\n{http10}"
    );
}

#[test]
fn a_repeated_content_length_reaches_the_upstream_as_one_value_or_is_refused() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("", &rules(up.addr));
    let listed = raw(
        fg.addr,
        "POST /lp HTTP/1.1\r\nHost: promo.example.com\r\nContent-Length: 5, 5\r\n\r\nhello",
    );
    assert_eq!(status_of(&listed), 400, "{listed}");
    let repeated = raw(
        fg.addr,
        "POST /lp HTTP/1.1\r\nHost: promo.example.com\r\nConnection: close\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(status_of(&repeated), 200, "{repeated}");
    let body = repeated.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let echo: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(echo["headers"]["content-length"], "5");
    let conflicting = raw(
        fg.addr,
        "POST /lp HTTP/1.1\r\nHost: promo.example.com\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
    assert_eq!(status_of(&conflicting), 400, "{conflicting}");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("", &rules(up.addr));
    let reply = raw(
        fg.addr,
        "GET /one HTTP/1.1\r\nHost: promo.example.com\r\n\r\nGET /two HTTP/1.1\r\nHost: promo.example.com\r\nConnection: close\r\n\r\n",
    );
    let one = reply.find("/safe/one").expect("first answered");
    let two = reply.find("/safe/two").expect("second answered");
    assert!(one < two);
    assert_eq!(reply.matches("HTTP/1.1 200").count(), 2);
}

#[test]
fn an_oversized_header_gets_431_and_is_never_forwarded() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("", &rules(up.addr));
    let big = "a".repeat(100 * 1024);
    let reply = raw(
        fg.addr,
        &format!("GET /lp HTTP/1.1\r\nHost: promo.example.com\r\nCookie: {big}\r\n\r\n"),
    );
    assert_eq!(status_of(&reply), 431, "{}", &reply[..reply.len().min(200)]);
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn transfer_encoding_wins_over_content_length_and_too_many_headers_are_refused() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("", &rules(up.addr));
    let both = raw(
        fg.addr,
        "POST /lp HTTP/1.1\r\nHost: promo.example.com\r\nConnection: close\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    // RFC 9112 §6.1: read by Transfer-Encoding alone; the next hop never sees both.
    assert_eq!(status_of(&both), 200, "{both}");
    let body = both.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let body = if body.contains("\r\n") {
        dechunk(body)
    } else {
        body.to_string()
    };
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(echo["headers"]["content-length"].is_null(), "{echo}");
    assert_eq!(echo["headers"]["transfer-encoding"], "chunked");
    let hits_before = up.hits.load(std::sync::atomic::Ordering::SeqCst);
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let reply = raw(
        fg.addr,
        &format!("GET /lp HTTP/1.1\r\nHost: promo.example.com\r\n{many}\r\n"),
    );
    assert_eq!(status_of(&reply), 431, "{}", &reply[..reply.len().min(200)]);
    assert_eq!(
        up.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits_before
    );
}

/// Reads until the peer closes (true) or `limit` passes (false).
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn slow_headers_are_cut_off_by_their_deadline_while_others_are_served() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start(
        // Above the per-address limit, so all 500 come from 127.0.0.1 and are held.
        "limits: { header_timeout: 2s, idle_timeout: 30s, max_connections_per_ip: 1024 }\n",
        &rules(up.addr),
    );
    let mut slow: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut s = TcpStream::connect(fg.addr).unwrap();
            s.write_all(b"GET /lp HTTP/1.1\r\nHost: promo.example.com\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // A normal visitor is answered while the slow ones trickle.
    let r = fg.get("/lp", &[("User-Agent", CHROME)]);
    assert_eq!(r.status, 200);
    // Each slow client sends a byte every 300 ms, which no per-read timeout would ever stop.
    let started = std::time::Instant::now();
    let mut open = slow.len();
    while open > 0 && started.elapsed() < Duration::from_secs(15) {
        open = 0;
        for s in &mut slow {
            if s.write_all(b"a").is_ok() && !closed_within(s, Duration::from_millis(1)) {
                open += 1;
            }
        }
        // The slow clients' pace: a byte each 300 ms.
        pace(Duration::from_millis(300));
    }
    assert_eq!(open, 0, "every slow header closed by the 2 s deadline");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before the deadline"
    );
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn a_first_header_is_timed_from_the_connection_not_from_its_later_bytes() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("limits: { header_timeout: 3s }\n", &rules(up.addr));
    // Many at once, so that for some the first bytes are there before flowgate's first look.
    let mut slow: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(fg.addr).unwrap();
            s.write_all(b"GET /lp HTTP/1.1\r\nHost: promo.example.com\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // The slow clients' pace: one more byte 2 s later, none after.
    pace(Duration::from_secs(2));
    for s in &mut slow {
        let _ = s.write_all(b"a");
    }
    // 3 s from the start (and a second of the check's granularity), not from the last byte.
    pace(Duration::from_millis(2200));
    let mut open = 0;
    for s in &mut slow {
        if !closed_within(s, Duration::from_millis(1)) {
            open += 1;
        }
    }
    assert_eq!(open, 0, "open 4.2 s after their first bytes");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_its_idle_timeout() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("limits: { idle_timeout: 2s }\n", &rules(up.addr));
    let mut s = TcpStream::connect(fg.addr).unwrap();
    s.write_all(b"GET /lp HTTP/1.1\r\nHost: promo.example.com\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut s, Duration::from_secs(10)),
        "closed after 2 s idle"
    );
}

#[test]
fn the_last_request_a_connection_may_carry_closes_it() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("limits: { requests_per_connection: 2 }\n", &rules(up.addr));
    let reply = raw(
        fg.addr,
        "GET /a HTTP/1.1\r\nHost: promo.example.com\r\n\r\nGET /b HTTP/1.1\r\nHost: promo.example.com\r\n\r\nGET /c HTTP/1.1\r\nHost: promo.example.com\r\n\r\n",
    );
    assert_eq!(reply.matches("HTTP/1.1 200").count(), 2, "{reply}");
    assert!(reply.to_ascii_lowercase().contains("connection: close"));
    assert!(!reply.contains("/safe/c"));
}

#[test]
fn a_body_over_max_body_bytes_gets_413_declared_or_chunked() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("limits: { max_body_bytes: 1KiB }\n", &rules(up.addr));
    let declared = raw(
        fg.addr,
        "POST /lp HTTP/1.1\r\nHost: promo.example.com\r\nContent-Length: 2048\r\n\r\n",
    );
    assert_eq!(status_of(&declared), 413, "{declared}");
    let chunk = "x".repeat(600);
    let chunked = raw(
        fg.addr,
        &format!(
            "POST /lp HTTP/1.1\r\nHost: promo.example.com\r\nTransfer-Encoding: chunked\r\n\r\n\
             258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
        ),
    );
    assert_eq!(status_of(&chunked), 413, "{chunked}");
    let small = raw(
        fg.addr,
        "POST /lp HTTP/1.1\r\nHost: promo.example.com\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(status_of(&small), 200, "{small}");
}

/// A kept-alive connection that got an answer: it holds a place.
fn admitted(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /lp HTTP/1.1\r\nHost: promo.example.com\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "no place for a connection"
    );
    s
}

#[test]
fn connections_over_the_per_address_and_per_listener_limits_are_closed_at_once() {
    let up = Upstream::start("landing");
    let per_ip = Flowgate::start(
        "trusted_proxies: []\nlimits: { max_connections_per_ip: 3 }\n",
        &rules(up.addr),
    );
    let held: Vec<TcpStream> = (0..3).map(|_| admitted(per_ip.addr)).collect();
    let mut fourth = TcpStream::connect(per_ip.addr).unwrap();
    assert!(closed_within(&mut fourth, Duration::from_secs(5)));
    assert!(per_ip.metric(r#"flowgate_connections_refused_total{limit="peer"}"#) >= 1.0);
    assert_eq!(per_ip.metric("flowgate_connections_open"), 3.0);
    drop(held);
    wait_for("places given back", Duration::from_secs(5), || {
        per_ip.metric("flowgate_connections_open") == 0.0
    });
    assert_eq!(per_ip.get("/lp", &[]).status, 200);

    // 127.0.0.1 is a trusted proxy here: only the listener's limit applies.
    let per_listener = Flowgate::start("limits: { max_connections: 2 }\n", &rules(up.addr));
    let _held: Vec<TcpStream> = (0..2).map(|_| admitted(per_listener.addr)).collect();
    let mut third = TcpStream::connect(per_listener.addr).unwrap();
    assert!(closed_within(&mut third, Duration::from_secs(5)));
    assert!(per_listener.metric(r#"flowgate_connections_refused_total{limit="listener"}"#) >= 1.0);
}
