//! Visitors in raw HTTP/1.1, so a test sees exactly what went over the wire: one request on
//! a fresh connection (`get`, `raw`), or a kept-alive connection (`Visitor`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// A response as received.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on a fresh connection and reads the whole answer.
pub fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect to flowgate");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: promo.example.com\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

pub fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", target, headers)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Sends `bytes` as they are and reads until the server closes (or 5 s of silence).
pub fn raw(addr: SocketAddr, bytes: &str) -> String {
    exchange(addr, bytes, false)
}

/// `raw`, with the visitor's side shut for writing once `bytes` are sent.
pub fn raw_half_closed(addr: SocketAddr, bytes: &str) -> String {
    exchange(addr, bytes, true)
}

fn exchange(addr: SocketAddr, bytes: &str, half_close: bool) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes.as_bytes()).unwrap();
    if half_close {
        s.shutdown(Shutdown::Write).unwrap();
    }
    let mut out = Vec::new();
    // A timeout or reset ends the answer; what arrived before it is kept.
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw answer.
pub fn status_of(reply: &str) -> u16 {
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The bytes of a request head, with `Host: promo.example.com`.
pub fn request_bytes(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: promo.example.com\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// A browser's WebSocket upgrade of `GET /chat` (RFC 6455's sample key).
pub fn websocket_upgrade() -> Vec<u8> {
    request_bytes(
        "GET",
        "/chat",
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
}

/// A message head as it went over the wire: the first line, then headers (names lowercase).
#[derive(Debug)]
pub struct Head {
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn status(&self) -> u16 {
        let code = self.line.split_whitespace().nth(1);
        code.and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let mut all = self.headers.iter().filter(|(k, _)| k == name);
        all.next().map(|(_, v)| v.as_str())
    }
}

pub fn read_head(r: &mut impl BufRead) -> Option<Head> {
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

fn read_line(r: &mut impl BufRead) -> String {
    let mut s = String::new();
    r.read_line(&mut s).unwrap();
    s.trim_end().to_string()
}

/// One visitor connection, kept open across requests.
pub struct Visitor(pub BufReader<TcpStream>);

impl Visitor {
    pub fn connect(addr: SocketAddr) -> Visitor {
        let s = TcpStream::connect(addr).expect("connect to flowgate");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Visitor(BufReader::new(s))
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.0.get_mut().write_all(bytes).expect("flowgate reads");
    }

    pub fn head(&mut self) -> Head {
        read_head(&mut self.0).expect("a response head")
    }

    /// The final response (1xx other than 101 skipped) and its body, read by its framing.
    pub fn response(&mut self) -> (Head, Vec<u8>) {
        self.read_response(false)
    }

    /// The response to a HEAD request: its head says how long a body would be; none follows.
    pub fn response_to_head(&mut self) -> Head {
        self.read_response(true).0
    }

    fn read_response(&mut self, to_head: bool) -> (Head, Vec<u8>) {
        let mut h = self.head();
        while (100..200).contains(&h.status()) && h.status() != 101 {
            h = self.head();
        }
        let mut body = Vec::new();
        if to_head || matches!(h.status(), 101 | 204 | 304) {
        } else if h
            .get("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            loop {
                let mut size = String::new();
                self.0.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
                if n == 0 {
                    while !read_line(&mut self.0).is_empty() {}
                    break;
                }
                let at = body.len();
                body.resize(at + n, 0);
                self.0.read_exact(&mut body[at..]).unwrap();
                assert_eq!(read_line(&mut self.0), "", "CRLF after a chunk");
            }
        } else if let Some(n) = h.get("content-length") {
            body.resize(n.parse().unwrap(), 0);
            self.0.read_exact(&mut body).unwrap();
        } else {
            self.0.read_to_end(&mut body).unwrap();
        }
        (h, body)
    }
}

/// Thirty visitors at once, three threads of ten from 203.0.113.1 to .30: how many of them
/// `offered` says got the offer. It gets each visitor's number (0 to 29) and address.
pub fn thirty_at_once(offered: impl Fn(usize, &str) -> bool + Send + Sync + 'static) -> usize {
    let offered = std::sync::Arc::new(offered);
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let offered = offered.clone();
            std::thread::spawn(move || {
                let visitors = (t * 10..t * 10 + 10).map(|n| (n, format!("203.0.113.{}", n + 1)));
                visitors.filter(|(n, ip)| offered(*n, ip)).count()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).sum()
}
