//! JA4, FoxIO's TLS client fingerprint (BSD-3-Clause; the algorithm is specified in
//! github.com/FoxIO-LLC/ja4, technical_details/JA4.md), computed from the first TLS record a
//! client sends. The record is parsed by `tls-parser` (Rusticata's, built on nom); only the
//! counting, sorting and hashing are ours. Anything that is not one whole ClientHello record
//! gives no fingerprint, and the handshake decides what becomes of the connection.

use sha2::{Digest, Sha256};
use tls_parser::{
    parse_tls_client_hello_extensions, parse_tls_plaintext, TlsExtension, TlsMessage,
    TlsMessageHandshake,
};

/// `t13d1516h2_8daaf6152771_b186095e22b6`: always 36 ASCII characters.
pub const LEN: usize = 36;

/// Extension types JA4 treats apart.
const SERVER_NAME: u16 = 0x0000;
const ALPN: u16 = 0x0010;

/// One fingerprint, kept inline: a connection carries it to every request without an
/// allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ja4([u8; LEN]);

impl Ja4 {
    pub fn as_str(&self) -> &str {
        // Only ever filled with ASCII below.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The JA4 of a ClientHello record (its 5-byte record header first); `None` for anything
    /// else, a record cut short or one `tls-parser` refuses.
    pub fn of_client_hello(record: &[u8]) -> Option<Ja4> {
        let (_, plain) = parse_tls_plaintext(record).ok()?;
        let hello = plain.msg.iter().find_map(|m| match m {
            TlsMessage::Handshake(TlsMessageHandshake::ClientHello(h)) => Some(h),
            _ => None,
        })?;
        let (rest, exts) = parse_tls_client_hello_extensions(hello.ext.unwrap_or(&[])).ok()?;
        if !rest.is_empty() {
            // An extension tls-parser could not read: a fingerprint without it would be wrong.
            return None;
        }
        let mut ciphers: Vec<u16> = (hello.ciphers.iter().map(|c| c.0))
            .filter(|&c| !grease(c))
            .collect();
        let mut types = Vec::with_capacity(exts.len());
        let (mut version, mut alpn, mut sigs) = (hello.version.0, None, &[][..]);
        for ext in &exts {
            if let TlsExtension::Grease(..) = ext {
                continue;
            }
            types.push(tls_parser::TlsExtensionType::from(ext).0);
            match ext {
                TlsExtension::SupportedVersions(vs) => {
                    let highest = vs.iter().map(|v| v.0).filter(|&v| !grease(v)).max();
                    version = highest.unwrap_or(version);
                }
                TlsExtension::ALPN(protocols) => alpn = Some(protocols.first().copied()),
                TlsExtension::SignatureAlgorithms(s) => sigs = s.as_slice(),
                _ => {}
            }
        }
        let mut out = [b'0'; LEN];
        out[0] = b't';
        out[1..3].copy_from_slice(version_code(version));
        out[3] = if types.contains(&SERVER_NAME) {
            b'd'
        } else {
            b'i'
        };
        two_digits(&mut out[4..6], ciphers.len());
        two_digits(&mut out[6..8], types.len());
        out[8..10].copy_from_slice(&alpn_code(alpn.flatten()));
        out[10] = b'_';
        out[23] = b'_';
        ciphers.sort_unstable();
        if !ciphers.is_empty() {
            let mut h = Sha256::new();
            hex_list(&mut h, &ciphers);
            hash12(&mut out[11..23], h);
        }
        types.retain(|&t| t != SERVER_NAME && t != ALPN);
        types.sort_unstable();
        if !types.is_empty() {
            let mut h = Sha256::new();
            hex_list(&mut h, &types);
            if !sigs.is_empty() {
                h.update(b"_");
                hex_list(&mut h, sigs);
            }
            hash12(&mut out[24..], h);
        }
        Some(Ja4(out))
    }
}

impl std::fmt::Debug for Ja4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Ja4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 8701's reserved values (`0x0a0a`, `0x1a1a`, .. `0xfafa`), which JA4 ignores.
fn grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

fn version_code(v: u16) -> &'static [u8; 2] {
    match v {
        0x0304 => b"13",
        0x0303 => b"12",
        0x0302 => b"11",
        0x0301 => b"10",
        0x0300 => b"s3",
        0x0002 => b"s2",
        0xfeff => b"d1",
        0xfefd => b"d2",
        0xfefc => b"d3",
        _ => b"00",
    }
}

fn two_digits(out: &mut [u8], n: usize) {
    let n = n.min(99) as u8;
    out[0] = b'0' + n / 10;
    out[1] = b'0' + n % 10;
}

/// The first and last characters of the first ALPN protocol, or of its hex form when either
/// is not an ASCII letter or digit; `00` without one.
fn alpn_code(first: Option<&[u8]>) -> [u8; 2] {
    let Some((&a, &b)) = first.and_then(|p| Some((p.first()?, p.last()?))) else {
        return *b"00";
    };
    if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() {
        [a, b]
    } else {
        [HEX[usize::from(a >> 4)], HEX[usize::from(b & 15)]]
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `002f,0035,...`: four lowercase hex digits each, comma-separated, into the hash.
fn hex_list(h: &mut Sha256, values: &[u16]) {
    for (i, &v) in values.iter().enumerate() {
        let mut item = [b',', 0, 0, 0, 0];
        for (k, shift) in [12, 8, 4, 0].into_iter().enumerate() {
            item[k + 1] = HEX[usize::from((v >> shift) & 15)];
        }
        h.update(if i == 0 { &item[1..] } else { &item[..] });
    }
}

/// The first 12 hex digits of the hash.
fn hash12(out: &mut [u8], h: Sha256) {
    let digest = h.finalize();
    for (i, byte) in digest.iter().take(6).enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 15)];
    }
}

#[cfg(test)]
mod tests;
