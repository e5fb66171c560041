//! A WebSocket tunnel through flowgate against a real upstream that switches protocols and
//! echoes: the tunnel is a connection like any other while it lasts — it holds its admission
//! place, counts in `flowgate_connections_open`, has an idle deadline, and is closed by the
//! drain once the requests are done.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const SWITCH: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// An upstream that switches to WebSocket when asked, echoing every byte after; a plain
/// request gets `ok`, `/slow` after `slow` (counted in `slow_asked` when it arrives).
struct WsUp {
    raw: RawUp,
    slow_asked: Arc<AtomicUsize>,
}

impl WsUp {
    fn start(slow: Duration) -> WsUp {
        let slow_asked = Arc::new(AtomicUsize::new(0));
        let asked = slow_asked.clone();
        let raw = RawUp::start(move |mut r| {
            while let Some(head) = read_head(&mut r) {
                if head.get("upgrade").is_some() {
                    if r.get_mut().write_all(SWITCH).is_err() {
                        return;
                    }
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = r.read(&mut buf) {
                        if r.get_mut().write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    return;
                }
                if head.line.starts_with("GET /slow") {
                    asked.fetch_add(1, SeqCst);
                    pace(slow);
                }
                let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                if r.get_mut().write_all(ok).is_err() {
                    return;
                }
            }
        });
        WsUp { raw, slow_asked }
    }
}

fn rules(up: SocketAddr) -> String {
    format!(
        "upstreams: {{ landing: {{ peers: [\"{up}\"], read_timeout: 10s }} }}\n\
         routes: {{ page: {{ proxy: {{ upstream: landing }} }} }}\n\
         campaigns: [ {{ id: c, flows: [ {{ name: all, to: page }} ] }} ]\n"
    )
}

/// A visitor whose connection switched to WebSocket through flowgate.
fn open_tunnel(addr: SocketAddr) -> Visitor {
    let mut v = Visitor::connect(addr);
    v.send(&websocket_upgrade());
    let h = v.head();
    assert_eq!(h.status(), 101, "{h:?}");
    echo(&mut v, b"\x81\x05hello");
    v
}

/// Sends a frame through the tunnel and reads it back.
fn echo(v: &mut Visitor, msg: &[u8]) {
    v.send(msg);
    let mut back = vec![0u8; msg.len()];
    v.0.read_exact(&mut back).expect("the bytes come back");
    assert_eq!(back, msg);
}

/// Reads until flowgate closes the connection; panics if it stays open past `limit`.
fn wait_closed(v: &mut Visitor, limit: Duration) -> Duration {
    let start = Instant::now();
    v.0.get_ref().set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match v.0.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("still open after {:?}: {e}", start.elapsed()),
        }
    }
}

/// Whether flowgate closed a connection without answering it.
fn refused(addr: SocketAddr) -> bool {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Writing may already fail on a connection flowgate closed.
    let _ = s.write_all(&request_bytes("GET", "/lp", &[]));
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    }
}

#[test]
fn a_tunnel_holds_its_place_and_its_count_until_it_closes() {
    let up = WsUp::start(Duration::ZERO);
    let fg = Flowgate::start(
        "trusted_proxies: []\nlimits: { max_connections_per_ip: 1 }\n",
        &rules(up.raw.addr),
    );
    let mut tunnel = open_tunnel(fg.addr);
    assert_eq!(fg.metric("flowgate_connections_open"), 1.0);
    assert!(
        refused(fg.addr),
        "a second connection while the tunnel is open"
    );
    assert_eq!(
        fg.metric(r#"flowgate_connections_refused_total{limit="peer"}"#),
        1.0
    );
    // Still the same tunnel after the refusal.
    echo(&mut tunnel, b"\x82\x03\x00\xff\x10");
    drop(tunnel);
    wait_for(
        "the tunnel's place given back",
        Duration::from_secs(5),
        || fg.metric("flowgate_connections_open") == 0.0,
    );
    // The tunnel's bytes count each way once it ends: two frames of 7 and 5 bytes, echoed.
    let bytes = |d: &str| fg.metric(&format!("flowgate_bytes_total{{direction=\"{d}\"}}"));
    assert_eq!((bytes("in"), bytes("out")), (12.0, 12.0));
    let r = fg.get("/lp", &[("User-Agent", CHROME)]);
    assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{r:?}");
    assert_eq!(bytes("out"), 14.0, "the page's body too");
}

#[test]
fn a_tunnel_where_nothing_moves_is_closed_after_tunnel_idle_timeout() {
    let up = WsUp::start(Duration::ZERO);
    let fg = Flowgate::start(
        "limits: { idle_timeout: 1s, tunnel_idle_timeout: 2s }\n",
        &rules(up.raw.addr),
    );
    let mut v = open_tunnel(fg.addr);
    // Frames more often than the deadline keep it open well past it, and past idle_timeout.
    let busy = Instant::now();
    while busy.elapsed() < Duration::from_secs(4) {
        echo(&mut v, b"\x89\x00");
        pace(Duration::from_millis(250));
    }
    assert_eq!(fg.metric("flowgate_connections_open"), 1.0);
    let quiet = wait_closed(&mut v, Duration::from_secs(10));
    assert!(quiet >= Duration::from_secs(2), "closed after {quiet:?}");
    wait_for("the tunnel counted out", Duration::from_secs(5), || {
        fg.metric("flowgate_connections_open") == 0.0
    });
}

#[test]
fn sigterm_lets_requests_finish_then_closes_tunnels_and_exits() {
    let up = WsUp::start(Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), "", &rules(up.raw.addr));
    // A grace period far longer than the drain may take: the process must not wait for it.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("shutdown_timeout: 2s", "shutdown_timeout: 60s"),
    )
    .unwrap();
    let mut child = spawn(&config);
    let addr = child.addr();
    let mut tunnel = open_tunnel(addr);
    let slow = std::thread::spawn(move || get(addr, "/slow", &[("User-Agent", CHROME)]));
    wait_for("the slow request upstream", Duration::from_secs(5), || {
        up.slow_asked.load(SeqCst) == 1
    });
    let started = Instant::now();
    child.signal("TERM");
    // While the request drains, the tunnel still carries bytes.
    echo(&mut tunnel, b"\x81\x05still");
    assert_eq!(slow.join().unwrap().status, 200);
    wait_closed(&mut tunnel, Duration::from_secs(20));
    assert!(child.wait().success());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "drained in {took:?}");
}
