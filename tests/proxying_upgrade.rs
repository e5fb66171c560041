//! The connection itself between a visitor and a real upstream: protocol switches (asked for
//! or not), pooled connections the upstream closes or drops, a body that stalls. Upstreams
//! here speak raw bytes from a std listener on 127.0.0.1:0, so each test says exactly what
//! went over the wire.

mod common;

use std::io::{BufRead, ErrorKind, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_websocket_upgrade_becomes_a_tunnel_through_flowgate() {
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let up = RawUp::start(move |mut r| {
        let Some(head) = read_head(&mut r) else {
            return;
        };
        *record.lock().unwrap() = Some(head);
        let _ = r.get_mut().write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        );
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = r.read(&mut buf) {
            if r.get_mut().write_all(&buf[..n]).is_err() {
                return;
            }
        }
    });
    let fg = Flowgate::start("", &proxy_rules(up.addr, "5s"));
    let mut v = Visitor::connect(fg.addr);
    v.send(&websocket_upgrade());
    let h = v.head();
    assert_eq!(h.status(), 101, "{h:?}");
    assert_eq!(h.get("upgrade"), Some("websocket"), "{h:?}");
    assert_eq!(
        h.get("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    for msg in [&b"\x81\x05hello"[..], &b"\x82\x03\x00\xff\x10"[..]] {
        v.send(msg);
        let mut back = vec![0u8; msg.len()];
        v.0.read_exact(&mut back).expect("the bytes come back");
        assert_eq!(back, msg);
    }
    let up_head = seen.lock().unwrap().take().expect("the upstream was asked");
    assert_eq!(up_head.get("upgrade"), Some("websocket"), "{up_head:?}");
    let conn = up_head.get("connection").unwrap_or("").to_ascii_lowercase();
    assert!(conn.contains("upgrade"), "{up_head:?}");
    assert_eq!(
        up_head.get("sec-websocket-key"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    assert_eq!(up_head.get("sec-websocket-version"), Some("13"));
}

#[test]
fn an_upgrade_nobody_asked_for_is_a_502_and_its_bytes_stay_upstream() {
    let up = RawUp::start(|mut r| {
        if read_head(&mut r).is_none() {
            return;
        }
        let _ = r.get_mut().write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n\
              GARBAGE-NOT-HTTP\x00\x01\x02",
        );
        let _ = r.read_to_end(&mut Vec::new());
    });
    let fg = Flowgate::start("", &proxy_rules(up.addr, "5s"));
    let r = fg.get("/lp", &[("User-Agent", CHROME)]);
    assert_eq!(r.status, 502, "{r:?}");
    assert!(!r.body.contains("GARBAGE"), "{r:?}");
    assert!(r.header("upgrade").is_none(), "{r:?}");
    let series = r#"flowgate_upstream_errors_total{kind="protocol",upstream="landing"}"#;
    assert_eq!(fg.metric(series), 1.0);
    let ev = fg.events(1);
    assert_eq!(ev[0]["status"], 502, "{ev:?}");
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn a_pooled_connection_the_upstream_closed_while_idle_is_not_a_502() {
    let closed = Arc::new(AtomicUsize::new(0));
    let count = closed.clone();
    // Like a reload: each connection serves one request, then closes after 100 ms idle.
    let up = RawUp::start(move |mut r| {
        if read_head(&mut r).is_none() || r.get_mut().write_all(OK).is_err() {
            return;
        }
        r.get_ref()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match r.fill_buf() {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                count.fetch_add(1, SeqCst);
            }
            _ => {} // a request within 100 ms: dropped unanswered, also like a reload
        }
    });
    let fg = Flowgate::start("", &proxy_rules(up.addr, "5s"));
    let mut v = Visitor::connect(fg.addr);
    v.send(&request_bytes("GET", "/one", &[]));
    assert_eq!(v.response().0.status(), 200);
    wait_for("the upstream closed", Duration::from_secs(5), || {
        closed.load(SeqCst) >= 1
    });
    v.send(&request_bytes("GET", "/two", &[]));
    let (h, body) = v.response();
    assert_eq!((h.status(), body.as_slice()), (200, &b"ok"[..]), "{h:?}");
    assert_eq!(up.conns.load(SeqCst), 2);
}

#[test]

fn a_get_the_upstream_dropped_on_a_reused_connection_is_sent_again_on_a_new_one() {
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    // Answers the first request of each connection; closes on reading the second.
    let up = RawUp::start(move |mut r| {
        if read_head(&mut r).is_none() || r.get_mut().write_all(OK).is_err() {
            return;
        }
        if read_head(&mut r).is_some() {
            count.fetch_add(1, SeqCst);
        }
    });
    let fg = Flowgate::start("", &proxy_rules(up.addr, "5s"));
    let mut v = Visitor::connect(fg.addr);
    v.send(&request_bytes("GET", "/one", &[]));
    assert_eq!(v.response().0.status(), 200);
    v.send(&request_bytes("GET", "/two", &[]));
    let (h, body) = v.response();
    assert_eq!((h.status(), body.as_slice()), (200, &b"ok"[..]), "{h:?}");
    assert_eq!(
        asked.load(SeqCst),
        1,
        "/two went first on the pooled connection"
    );
    assert_eq!(up.conns.load(SeqCst), 2);
}

#[test]

fn a_body_less_post_the_upstream_dropped_is_not_sent_twice() {
    let posts = Arc::new(AtomicUsize::new(0));
    let count = posts.clone();
    // Answers the first request of each connection; closes on reading the second.
    let up = RawUp::start(move |mut r| {
        let mut n = 0;
        while let Some(head) = read_head(&mut r) {
            if head.line.starts_with("POST ") {
                count.fetch_add(1, SeqCst);
            }
            n += 1;
            if n == 2 || r.get_mut().write_all(OK).is_err() {
                return;
            }
        }
    });
    let fg = Flowgate::start("", &proxy_rules(up.addr, "5s"));
    let mut v = Visitor::connect(fg.addr);
    v.send(&request_bytes("GET", "/one", &[]));
    assert_eq!(v.response().0.status(), 200);
    // A click postback, say: no body, but not idempotent; the upstream may have acted on it.
    v.send(&request_bytes(
        "POST",
        "/convert?cid=1",
        &[("Content-Length", "0")],
    ));
    let (h, _) = v.response();
    assert_eq!(posts.load(SeqCst), 1, "the POST reached the upstream twice");
    assert_eq!(h.status(), 502, "{h:?}");
}

#[test]

fn an_upstream_that_stalls_mid_body_is_cut_off_after_its_read_timeout() {
    let up = RawUp::start(|mut r| {
        if read_head(&mut r).is_none() {
            return;
        }
        let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
        head.extend_from_slice(&[b'a'; 100]);
        let _ = r.get_mut().write_all(&head);
        // Stalls: writes nothing more until flowgate hangs up (or 30 s pass).
        r.get_ref()
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let _ = r.read_to_end(&mut Vec::new());
    });
    let fg = Flowgate::start("", &proxy_rules(up.addr, "500ms"));
    let mut v = Visitor::connect(fg.addr);
    v.0.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let start = Instant::now();
    v.send(&request_bytes("GET", "/slow-body", &[]));
    let h = v.head();
    assert_eq!(h.status(), 200, "{h:?}");
    let mut got = 0;
    let mut buf = [0u8; 4096];
    loop {
        match v.0.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "still open after {:?} with {got} bytes: {e}",
                start.elapsed()
            ),
        }
    }
    assert_eq!(got, 100, "the visitor had only what the upstream sent");
}

#[test]
fn a_pooled_connection_keeps_the_read_timeout_for_each_request_it_carries() {
    // One upstream connection: the first answer is at once, the second never comes.
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    let up = RawUp::start(move |mut r| {
        while read_head(&mut r).is_some() {
            if count.fetch_add(1, SeqCst) > 0 {
                let mut buf = [0u8; 64];
                while let Ok(1..) = r.read(&mut buf) {}
                return;
            }
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
    });
    let fg = Flowgate::start("", &proxy_rules(up.addr, "400ms"));
    // One visitor connection, so both requests are served by one thread and its pool.
    let mut v = Visitor::connect(fg.addr);
    let ask =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: a.test\r\nUser-Agent: {CHROME}\r\n\r\n");
    v.send(ask("/first").as_bytes());
    let h = v.head();
    assert_eq!(h.status(), 200, "{h:?}");
    let mut ok = [0u8; 2];
    v.0.read_exact(&mut ok).unwrap();
    let asked = Instant::now();
    v.send(ask("/second").as_bytes());
    let h = v.head();
    let waited = asked.elapsed();
    assert_eq!(h.status(), 504, "{h:?}");
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(3),
        "answered after {waited:?}"
    );
    assert_eq!(
        up.conns.load(SeqCst),
        1,
        "the second request went on the pooled connection"
    );
    let series = r#"flowgate_upstream_errors_total{kind="timeout",upstream="landing"}"#;
    assert_eq!(fg.metric(series), 1.0);
}
