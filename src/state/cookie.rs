//! The visitor cookie: when this browser last clicked in each campaign (and flow), signed
//! with HMAC-SHA256 under a key kept in the state folder. A returning browser is recognised
//! with no server state, and a forged, edited or foreign cookie counts for nothing.
//!
//! Value: base64url of `[version][n][n × (scope u32, unix seconds u32)][16-byte tag]`.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

pub const NAME: &str = "fg_uv";
/// The lander's click, for its click-through: a cookie of its own, set only by flows with a
/// `then`. `fg_uv` is resent only when it learns something; this one changes every click.
pub const CLICK_NAME: &str = "fg_click";
/// The click cookie's first byte, so that neither cookie's value passes for the other.
const CLICK_VERSION: u8 = 2;
/// Campaigns and flows one cookie remembers; the oldest is forgotten for a new one.
const MAX_ENTRIES: usize = 16;
const VERSION: u8 = 1;
const TAG: usize = 16;
/// A scope seen again this soon is not worth a new cookie (and the bytes it costs).
const RESEND_AFTER_SECS: u32 = 60;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VisitorCookie {
    entries: [(u32, u32); MAX_ENTRIES],
    len: usize,
}

impl VisitorCookie {
    /// When this browser last clicked in `scope` (unix seconds).
    pub fn seen(&self, scope: u32) -> Option<u32> {
        self.entries[..self.len]
            .iter()
            .find(|(s, _)| *s == scope)
            .map(|(_, t)| *t)
    }

    /// Marks `scope` seen at `secs`; true when the cookie should be sent again.
    pub fn mark(&mut self, scope: u32, secs: u32) -> bool {
        if let Some(e) = self.entries[..self.len]
            .iter_mut()
            .find(|(s, _)| *s == scope)
        {
            let due = secs.saturating_sub(e.1) >= RESEND_AFTER_SECS;
            if due {
                e.1 = secs;
            }
            return due;
        }
        if self.len < MAX_ENTRIES {
            self.entries[self.len] = (scope, secs);
            self.len += 1;
        } else if let Some(oldest) = self.entries.iter_mut().min_by_key(|(_, t)| *t) {
            *oldest = (scope, secs);
        }
        true
    }

    /// The signed value, for `Set-Cookie`.
    pub fn encode(&self, key: &Hmac<Sha256>) -> String {
        let mut out = Vec::new();
        self.encode_into(key, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// The signed value appended to `out` (the `Set-Cookie` header's buffer: no value of
    /// its own to allocate and copy).
    pub fn encode_into(&self, key: &Hmac<Sha256>, out: &mut Vec<u8>) {
        let mut raw = [0u8; 2 + MAX_ENTRIES * 8 + TAG];
        raw[0] = VERSION;
        raw[1] = self.len as u8;
        let mut n = 2;
        for (scope, secs) in &self.entries[..self.len] {
            raw[n..n + 4].copy_from_slice(&scope.to_be_bytes());
            raw[n + 4..n + 8].copy_from_slice(&secs.to_be_bytes());
            n += 8;
        }
        let mut mac = key.clone();
        mac.update(&raw[..n]);
        raw[n..n + TAG].copy_from_slice(&mac.finalize().into_bytes()[..TAG]);
        base64url_into(&raw[..n + TAG], out);
    }

    /// At most how long `encode`'s value is, in bytes (for a buffer's capacity).
    pub fn encoded_len(&self) -> usize {
        (2 + self.len * 8 + TAG).div_ceil(3) * 4
    }

    /// The cookie a value holds, if `key` signed it.
    pub fn decode(value: &str, key: &Hmac<Sha256>) -> Option<VisitorCookie> {
        let mut raw = [0u8; 2 + MAX_ENTRIES * 8 + TAG];
        let len = unbase64url(value.as_bytes(), &mut raw)?;
        if len < 2 + TAG || raw[0] != VERSION {
            return None;
        }
        let n = usize::from(raw[1]);
        if n > MAX_ENTRIES || len != 2 + n * 8 + TAG {
            return None;
        }
        let (body, tag) = raw[..len].split_at(2 + n * 8);
        let mut mac = key.clone();
        mac.update(body);
        mac.verify_truncated_left(tag).ok()?;
        let mut c = VisitorCookie {
            len: n,
            ..VisitorCookie::default()
        };
        for (e, chunk) in c.entries.iter_mut().zip(body[2..].chunks_exact(8)) {
            let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            *e = (word(&chunk[..4]), word(&chunk[4..]));
        }
        Some(c)
    }
}

/// The click cookie's signed value: `[version][click id, 16 bytes][16-byte tag]`.
pub fn encode_click(id: u128, key: &Hmac<Sha256>) -> String {
    let mut raw = [0u8; 1 + 16 + TAG];
    raw[0] = CLICK_VERSION;
    raw[1..17].copy_from_slice(&id.to_be_bytes());
    let mut mac = key.clone();
    mac.update(&raw[..17]);
    raw[17..].copy_from_slice(&mac.finalize().into_bytes()[..TAG]);
    base64url(&raw)
}

/// The click id a click cookie holds, if `key` signed it.
pub fn decode_click(value: &str, key: &Hmac<Sha256>) -> Option<u128> {
    let mut raw = [0u8; 1 + 16 + TAG];
    let len = unbase64url(value.as_bytes(), &mut raw)?;
    if len != raw.len() || raw[0] != CLICK_VERSION {
        return None;
    }
    let mut mac = key.clone();
    mac.update(&raw[..17]);
    mac.verify_truncated_left(&raw[17..]).ok()?;
    let mut id = [0u8; 16];
    id.copy_from_slice(&raw[1..17]);
    Some(u128::from_be_bytes(id))
}

/// The value of the visitor cookie among the request's `Cookie` headers.
pub fn find(headers: &HeaderMap) -> Option<&str> {
    find_named(headers, NAME)
}

/// The value of the cookie `name` among the request's `Cookie` headers.
pub fn find_named<'h>(headers: &'h HeaderMap, wanted: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (name.trim() == wanted).then(|| value.trim())
        })
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    base64url_into(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Unpadded base64url of `bytes`, appended to `s`.
fn base64url_into(bytes: &[u8], s: &mut Vec<u8>) {
    s.reserve(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..=chunk.len() {
            s.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
        }
    }
}

/// Decodes unpadded base64url into `out`; `None` for anything else or too much of it.
fn unbase64url(text: &[u8], out: &mut [u8]) -> Option<usize> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    if text.len() % 4 == 1 || text.len() / 4 * 3 + 2 > out.len() + 2 {
        return None;
    }
    let mut n = 0;
    for chunk in text.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            *out.get_mut(n)? = (acc >> (16 - 8 * i)) as u8;
            n += 1;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &[u8]) -> Hmac<Sha256> {
        Hmac::new_from_slice(k).unwrap()
    }

    #[test]
    fn a_signed_cookie_round_trips_and_a_changed_one_is_worthless() {
        let k = key(b"0123456789abcdef0123456789abcdef");
        let mut c = VisitorCookie::default();
        assert!(c.mark(7, 1_000) && c.mark(9, 1_010));
        let v = c.encode(&k);
        assert!(v.len() <= c.encoded_len() && v.len() + 3 > c.encoded_len());
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let back = VisitorCookie::decode(&v, &k).unwrap();
        assert_eq!(
            (back.seen(7), back.seen(9), back.seen(8)),
            (Some(1_000), Some(1_010), None)
        );
        // Another key, one changed character, a cut or a longer value: nothing.
        assert_eq!(VisitorCookie::decode(&v, &key(b"another key")), None);
        let mut flipped = v.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            VisitorCookie::decode(std::str::from_utf8(&flipped).unwrap(), &k),
            None
        );
        assert_eq!(VisitorCookie::decode(&v[..v.len() - 1], &k), None);
        assert_eq!(VisitorCookie::decode(&format!("{v}AAAA"), &k), None);
        for junk in ["", "=", "AAAA", "***", &"A".repeat(10_000)] {
            assert_eq!(VisitorCookie::decode(junk, &k), None, "{junk:.20}");
        }
    }

    #[test]
    fn a_cookie_is_resent_only_when_it_learned_something() {
        let mut c = VisitorCookie::default();
        assert!(c.mark(1, 100), "a new scope");
        assert!(!c.mark(1, 130), "the same scope half a minute later");
        assert_eq!(c.seen(1), Some(100));
        assert!(c.mark(1, 160));
        assert_eq!(c.seen(1), Some(160));
        // Full: the oldest scope is forgotten for the new one.
        for s in 2..=16 {
            c.mark(s, 1000 + s);
        }
        assert!(c.mark(99, 5000));
        assert_eq!(
            (c.seen(1), c.seen(99), c.seen(2)),
            (None, Some(5000), Some(1002))
        );
    }

    #[test]
    fn a_click_cookie_round_trips_and_nothing_else_passes_for_one() {
        let k = key(b"0123456789abcdef0123456789abcdef");
        let id = uuid::Uuid::now_v7().as_u128();
        let v = encode_click(id, &k);
        assert_eq!(decode_click(&v, &k), Some(id));
        assert_eq!(decode_click(&v, &key(b"another key")), None);
        let mut flipped = v.clone().into_bytes();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            decode_click(std::str::from_utf8(&flipped).unwrap(), &k),
            None
        );
        let mut uv = VisitorCookie::default();
        uv.mark(1, 2);
        assert_eq!(decode_click(&uv.encode(&k), &k), None);
        assert_eq!(VisitorCookie::decode(&v, &k), None);
        for junk in ["", "AAAA", &"A".repeat(44)] {
            assert_eq!(decode_click(junk, &k), None);
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; fg_uv=xyz; b=2".parse().unwrap());
        assert_eq!(find(&h), Some("xyz"));
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1".parse().unwrap());
        h.append("cookie", "fg_uv=abc".parse().unwrap());
        assert_eq!(find(&h), Some("abc"));
        assert_eq!(find(&HeaderMap::new()), None);
    }
}
