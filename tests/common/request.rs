//! What the harness's own HTTP/1.1 servers (the upstream, the postback receiver, the file
//! server) read: one whole request off a connection, so keep-alive works for each of them.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};

use super::client::read_head;

/// One request as it came over the wire.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub target: String,
    /// Lower-case names; the last of a repeated header.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// The next request on `reader`, its body framed by `content-length` or chunked, all read so
/// the next one starts where it should; `None` once the peer is gone or sent a request cut
/// short.
pub fn read_request(reader: &mut impl BufRead) -> Option<Received> {
    let head = read_head(reader)?;
    let mut parts = head.line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let headers: BTreeMap<String, String> = head.headers.into_iter().collect();
    let body = read_body(reader, &headers)?;
    Some(Received {
        method,
        target,
        headers,
        body,
    })
}

fn read_body(reader: &mut impl BufRead, headers: &BTreeMap<String, String>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).ok()? == 0 {
                return None;
            }
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            // The chunk and its CRLF; the last chunk's CRLF ends the (trailer-less) body.
            let at = body.len();
            body.resize(at + n + 2, 0);
            reader.read_exact(&mut body[at..]).ok()?;
            body.truncate(at + n);
            if n == 0 {
                return Some(body);
            }
        }
    }
    let n: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    body.resize(n, 0);
    reader.read_exact(&mut body).ok()?;
    Some(body)
}
