//! The PROXY protocol (HAProxy's spec, versions 1 and 2): an L4 balancer in front of flowgate
//! opens each connection with a header naming the client it accepted. Parsing is a pure
//! function of the first bytes, so it is tested, and fuzzed, without sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest header either version may send before the HTTP request starts. A v1 line is
/// at most 107 bytes; a v2 header is 16 bytes plus its length, and flowgate takes no more
/// TLVs than fit in this.
pub const MAX_HEADER: usize = 536;

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A proxied connection: the client's address as the balancer saw it.
    Proxied { client: SocketAddr, len: usize },
    /// The balancer's own connection (health checks; `UNKNOWN`, v2 `LOCAL`): the TCP peer
    /// stands.
    Local { len: usize },
}

impl Header {
    /// How many bytes of the stream the header took.
    pub fn header_len(&self) -> usize {
        match *self {
            Header::Proxied { len, .. } | Header::Local { len } => len,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    Done(Header),
    /// A valid beginning: more bytes are needed.
    Incomplete,
    /// Not a PROXY protocol header: the connection is closed.
    Invalid(&'static str),
}

/// Parses the header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parse {
    if buf.starts_with(b"PROXY ") {
        return v1(buf);
    }
    if buf.len() >= V2_SIGNATURE.len() {
        if buf.starts_with(V2_SIGNATURE) {
            return v2(buf);
        }
    } else if V2_SIGNATURE.starts_with(buf) || b"PROXY ".starts_with(buf) {
        return Parse::Incomplete;
    }
    Parse::Invalid("no PROXY protocol header")
}

/// `PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n`, or `PROXY UNKNOWN ...\r\n`.
fn v1(buf: &[u8]) -> Parse {
    const MAX_LINE: usize = 107;
    let Some(end) = buf.iter().take(MAX_LINE).position(|&b| b == b'\n') else {
        return if buf.len() < MAX_LINE {
            Parse::Incomplete
        } else {
            Parse::Invalid("PROXY v1 line too long")
        };
    };
    let len = end + 1;
    let Some(line) = buf[..end].strip_suffix(b"\r") else {
        return Parse::Invalid("PROXY v1 line does not end in CRLF");
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return Parse::Invalid("PROXY v1 line is not text");
    };
    let mut f = line.split(' ');
    let _proxy = f.next();
    match f.next() {
        Some("UNKNOWN") => return Parse::Done(Header::Local { len }),
        Some("TCP4") | Some("TCP6") => {}
        _ => return Parse::Invalid("PROXY v1: unknown protocol"),
    }
    let (Some(src), Some(_dst), Some(sport), Some(_dport), None) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return Parse::Invalid("PROXY v1: wrong number of fields");
    };
    let (Ok(ip), Ok(port)) = (src.parse::<IpAddr>(), sport.parse::<u16>()) else {
        return Parse::Invalid("PROXY v1: bad source address");
    };
    Parse::Done(Header::Proxied {
        client: SocketAddr::new(ip, port),
        len,
    })
}

/// The binary header: signature, version and command, family, length, addresses, TLVs.
fn v2(buf: &[u8]) -> Parse {
    if buf.len() < 16 {
        return Parse::Incomplete;
    }
    let (ver_cmd, fam) = (buf[12], buf[13]);
    if ver_cmd >> 4 != 2 {
        return Parse::Invalid("PROXY v2: bad version");
    }
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > MAX_HEADER {
        return Parse::Invalid("PROXY v2 header too long");
    }
    if buf.len() < len {
        return Parse::Incomplete;
    }
    let addr = &buf[16..len];
    match ver_cmd & 0x0f {
        0 => return Parse::Done(Header::Local { len }),
        1 => {}
        _ => return Parse::Invalid("PROXY v2: bad command"),
    }
    let client = match fam {
        // TCP or UDP over IPv4: src, dst (4 bytes each), then the ports.
        0x11 | 0x12 if addr.len() >= 12 => {
            let ip = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([addr[8], addr[9]]))
        }
        0x21 | 0x22 if addr.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addr[..16]);
            let port = u16::from_be_bytes([addr[32], addr[33]]);
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port)
        }
        // AF_UNSPEC, unix sockets: nothing to name the client by.
        0x00 | 0x31 | 0x32 => return Parse::Done(Header::Local { len }),
        _ => return Parse::Invalid("PROXY v2: address block too short or unknown family"),
    };
    Parse::Done(Header::Proxied { client, len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v2_header(cmd: u8, fam: u8, addr: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(addr.len() as u16).to_be_bytes());
        h.extend_from_slice(addr);
        h
    }

    #[test]
    fn a_v1_line_names_the_client_and_its_length() {
        let line = b"PROXY TCP4 203.0.113.9 198.51.100.1 56324 80\r\nGET / HTTP/1.1\r\n";
        let client = "203.0.113.9:56324".parse().unwrap();
        assert_eq!(
            parse(line),
            Parse::Done(Header::Proxied { client, len: 46 })
        );
        let v6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n";
        assert!(matches!(parse(v6), Parse::Done(Header::Proxied { .. })));
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(parse(unknown), Parse::Done(Header::Local { len: 15 }));
    }

    #[test]
    fn a_v2_header_names_the_client_and_local_keeps_the_peer() {
        let mut addr = vec![203, 0, 113, 9, 198, 51, 100, 1];
        addr.extend_from_slice(&56324u16.to_be_bytes());
        addr.extend_from_slice(&80u16.to_be_bytes());
        let h = v2_header(1, 0x11, &addr);
        let client = "203.0.113.9:56324".parse().unwrap();
        assert_eq!(parse(&h), Parse::Done(Header::Proxied { client, len: 28 }));
        assert_eq!(
            parse(&v2_header(0, 0x00, &[])),
            Parse::Done(Header::Local { len: 16 })
        );
        let mut v6 = [0u8; 36].to_vec();
        v6[15] = 1;
        v6[32..34].copy_from_slice(&443u16.to_be_bytes());
        assert_eq!(
            parse(&v2_header(1, 0x21, &v6)),
            Parse::Done(Header::Proxied {
                client: "[::1]:443".parse().unwrap(),
                len: 52
            })
        );
    }

    #[test]
    fn partial_headers_wait_and_garbage_is_refused() {
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Parse::Incomplete);
        assert_eq!(parse(b"\r\n\r\n\0"), Parse::Incomplete);
        assert_eq!(parse(b"PRO"), Parse::Incomplete);
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Parse::Invalid(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 x y 1 2\r\n"),
            Parse::Invalid(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n"),
            Parse::Invalid(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
            Parse::Invalid(_)
        ));
        assert!(matches!(parse(&[b'P'; 200][..]), Parse::Invalid(_)));
        let long = v2_header(1, 0x11, &[0u8; 600]);
        assert!(matches!(parse(&long), Parse::Invalid(_)));
        assert!(matches!(
            parse(&v2_header(1, 0x11, &[1, 2])),
            Parse::Invalid(_)
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn no_input_panics_and_a_header_never_claims_more_than_it_was_given(
            bytes in proptest::collection::vec(any::<u8>(), 0..700),
            v2 in any::<bool>(),
        ) {
            let mut buf = if v2 { V2_SIGNATURE.to_vec() } else { b"PROXY ".to_vec() };
            buf.extend_from_slice(&bytes);
            for input in [&buf[..], &bytes[..]] {
                if let Parse::Done(h) = parse(input) {
                    prop_assert!(h.header_len() <= input.len() && h.header_len() <= MAX_HEADER);
                }
            }
        }
    }
}
