//! The connection itself between a visitor and a real upstream: protocol switches (asked for
//! or not), pooled connections the upstream closes or drops, a body that stalls. Upstreams
//! here speak raw bytes from a std listener on 127.0.0.1:0, so each test says exactly what
//! went over the wire.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn rules(up: SocketAddr, read_timeout: &str) -> String {
    format!(
        r#"
upstreams:
  landing: {{ peers: ["{up}"], connect_timeout: 1s, read_timeout: {read_timeout} }}
routes:
  page: {{ proxy: {{ upstream: landing }} }}
campaigns:
  - id: c
    flows:
      - {{ name: all, to: page }}
"#
    )
}

/// A message head as it went over the wire: the first line, then headers (names lowercase).
#[derive(Debug)]
struct Head {
    line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn status(&self) -> u16 {
        let code = self.line.split_whitespace().nth(1);
        code.and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    fn get(&self, name: &str) -> Option<&str> {
        let mut all = self.headers.iter().filter(|(k, _)| k == name);
        all.next().map(|(_, v)| v.as_str())
    }
}

fn read_head(r: &mut impl BufRead) -> Option<Head> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let line = line.trim_end().to_string();
    Some(Head { line, headers })
}

/// One visitor connection, kept open across requests.
struct Visitor(BufReader<TcpStream>);

impl Visitor {
    fn connect(addr: SocketAddr) -> Visitor {
        let s = TcpStream::connect(addr).expect("connect to flowgate");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Visitor(BufReader::new(s))
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.get_mut().write_all(bytes).expect("flowgate reads");
    }

    fn head(&mut self) -> Head {
        read_head(&mut self.0).expect("a response head")
    }

    /// A response with a `Content-Length` body (all the upstreams here send one).
    fn response(&mut self) -> (Head, Vec<u8>) {
        let h = self.head();
        let n = h.get("content-length").map_or(0, |n| n.parse().unwrap());
        let mut body = vec![0; n];
        self.0.read_exact(&mut body).unwrap();
        (h, body)
    }
}

fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: promo.example.com\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// A raw upstream: `serve` gets each accepted connection on its own thread.
struct RawUp {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl RawUp {
    fn start(serve: impl Fn(BufReader<TcpStream>) + Send + Sync + 'static) -> RawUp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (conns, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (counted, stopped, serve) = (conns.clone(), stop.clone(), Arc::new(serve));
        thread::spawn(move || {
            for tcp in listener.incoming() {
                if stopped.load(SeqCst) {
                    return;
                }
                let Ok(tcp) = tcp else { continue };
                counted.fetch_add(1, SeqCst);
                let serve = serve.clone();
                thread::spawn(move || serve(BufReader::new(tcp)));
            }
        });
        RawUp { addr, conns, stop }
    }
}

impl Drop for RawUp {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

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
    let fg = Flowgate::start("", &rules(up.addr, "5s"));
    let mut v = Visitor::connect(fg.addr);
    v.send(&request(
        "GET",
        "/chat",
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    ));
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
    let fg = Flowgate::start("", &rules(up.addr, "5s"));
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
    let fg = Flowgate::start("", &rules(up.addr, "5s"));
    let mut v = Visitor::connect(fg.addr);
    v.send(&request("GET", "/one", &[]));
    assert_eq!(v.response().0.status(), 200);
    wait_for("the upstream closed", Duration::from_secs(5), || {
        closed.load(SeqCst) >= 1
    });
    v.send(&request("GET", "/two", &[]));
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
    let fg = Flowgate::start("", &rules(up.addr, "5s"));
    let mut v = Visitor::connect(fg.addr);
    v.send(&request("GET", "/one", &[]));
    assert_eq!(v.response().0.status(), 200);
    v.send(&request("GET", "/two", &[]));
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
    let fg = Flowgate::start("", &rules(up.addr, "5s"));
    let mut v = Visitor::connect(fg.addr);
    v.send(&request("GET", "/one", &[]));
    assert_eq!(v.response().0.status(), 200);
    // A click postback, say: no body, but not idempotent; the upstream may have acted on it.
    v.send(&request(
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
    let fg = Flowgate::start("", &rules(up.addr, "500ms"));
    let mut v = Visitor::connect(fg.addr);
    v.0.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let start = Instant::now();
    v.send(&request("GET", "/slow-body", &[]));
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
