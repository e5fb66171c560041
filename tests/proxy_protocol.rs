//! Behind an L4 balancer: a `proxy_protocol` listener takes the client's address from the
//! PROXY protocol header — from a trusted balancer only — with raw headers and with a real
//! HAProxy sending them.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

struct Gateway {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    _process: Process,
}

/// flowgate with its listener in PROXY protocol mode, proxying to `upstream`.
fn gateway(upstream: SocketAddr, extra: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let rules = format!(
        "upstreams: {{ landing: {{ peers: [\"{upstream}\"] }} }}\n\
         routes: {{ page: {{ proxy: {{ upstream: landing }} }} }}\n\
         campaigns: [ {{ id: c, flows: [ {{ name: all, to: page }} ] }} ]\n"
    );
    let config = write_setup(dir.path(), extra, &rules);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        LISTEN,
        "listen: [ { addr: \"127.0.0.1:0\", proxy_protocol: true } ]",
    );
    std::fs::write(&config, text).unwrap();
    let process = spawn(&config);
    Gateway {
        addr: process.addr(),
        dir,
        _process: process,
    }
}

/// Sends `head` and then a GET, returns what came back (empty if the connection was closed).
fn exchange(addr: SocketAddr, head: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut msg = head.to_vec();
    msg.extend_from_slice(
        b"GET /lp HTTP/1.1\r\nHost: promo.example.com\r\nConnection: close\r\n\r\n",
    );
    let _ = s.write_all(&msg);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn real_ip_seen(reply: &str) -> String {
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    json(body)["headers"]["x-real-ip"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn v2_header(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&client);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

#[test]
fn the_client_named_by_a_trusted_balancer_is_the_visitor() {
    let up = Upstream::start("landing");
    let gw = gateway(up.addr, "");
    let v1 = exchange(gw.addr, b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n");
    assert!(v1.starts_with("HTTP/1.1 200"), "{v1}");
    assert_eq!(real_ip_seen(&v1), "203.0.113.9");
    let v2 = exchange(gw.addr, &v2_header([198, 51, 100, 7], 4444));
    assert_eq!(real_ip_seen(&v2), "198.51.100.7");
    let local = exchange(gw.addr, b"PROXY UNKNOWN\r\n");
    assert_eq!(
        real_ip_seen(&local),
        "127.0.0.1",
        "a health check keeps the peer"
    );
    let events = wait_events(&gw, 3);
    assert_eq!(events[0]["ip"], "203.0.113.9");
}

fn wait_events(gw: &Gateway, n: usize) -> Vec<serde_json::Value> {
    let dir = gw.dir.path().join("events");
    wait_for("events written", Duration::from_secs(10), || {
        event_lines(&dir).len() >= n
    });
    event_lines(&dir)
}

#[test]
fn a_header_from_an_untrusted_peer_or_no_header_closes_the_connection() {
    let up = Upstream::start("landing");
    let untrusting = gateway(up.addr, "trusted_proxies: []\n");
    let reply = exchange(
        untrusting.addr,
        b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n",
    );
    assert_eq!(reply, "", "nothing answered to an untrusted balancer");
    let gw = gateway(up.addr, "");
    assert_eq!(
        exchange(gw.addr, b""),
        "",
        "a plain request is not a header"
    );
    assert_eq!(exchange(gw.addr, b"PROXY TCP4 nonsense\r\n"), "");
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// A real HAProxy in TCP mode in front of flowgate, sending v1 or v2 headers; the visitor
/// connects from 127.0.0.2, which only the header can tell flowgate.
#[test]
fn behind_a_real_haproxy_the_visitor_is_the_client_haproxy_accepted() {
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("haproxy is installed (apt-get install haproxy; .ci/run does)");
    let up = Upstream::start("landing");
    let gw = gateway(up.addr, "");
    for send in ["send-proxy", "send-proxy-v2"] {
        let front = free_port();
        let cfg = gw.dir.path().join(format!("haproxy-{send}.cfg"));
        std::fs::write(
            &cfg,
            format!(
                "global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
                 timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{front}\n  \
                 default_backend b\nbackend b\n  server fg {} {send}\n",
                gw.addr
            ),
        )
        .unwrap();
        let mut ha = Command::new(haproxy)
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let front: SocketAddr = format!("127.0.0.1:{front}").parse().unwrap();
        wait_listening(front);
        let socket = connect_from("127.0.0.2", front);
        let reply = request_on(socket);
        let _ = ha.kill();
        let _ = ha.wait();
        assert!(reply.starts_with("HTTP/1.1 200"), "{send}: {reply}");
        assert_eq!(real_ip_seen(&reply), "127.0.0.2", "{send}");
    }
}

/// A connection from a chosen loopback address (std binds through `TcpStream::connect` only
/// from the default source, so this goes through libc).
fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let src: std::net::Ipv4Addr = source.parse().unwrap();
    let SocketAddr::V4(to) = to else {
        panic!("IPv4 only")
    };
    let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function creates and then owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let from = sin(src, 0);
        assert_eq!(
            libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len),
            0
        );
        let dest = sin(*to.ip(), to.port());
        assert_eq!(
            libc::connect(fd, (&dest as *const libc::sockaddr_in).cast(), len),
            0
        );
        TcpStream::from_raw_fd(fd)
    }
}

fn request_on(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /lp HTTP/1.1\r\nHost: promo.example.com\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn on_a_balancers_own_connection_its_forwarding_headers_are_not_believed() {
    let up = Upstream::start("landing");
    let gw = gateway(up.addr, "");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"PROXY UNKNOWN\r\nGET /lp HTTP/1.1\r\nHost: promo.example.com\r\n\
          X-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let reply = String::from_utf8_lossy(&out);
    assert_eq!(real_ip_seen(&reply), "127.0.0.1", "{reply}");
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert_eq!(json(body)["headers"]["x-forwarded-for"], "127.0.0.1");
}
