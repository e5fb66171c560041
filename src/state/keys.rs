//! The state's secrets, each a file of 32 random bytes (mode 0600) in the state folder,
//! shared by every process on the machine: the cookie key, and the visitor key that turns an
//! address and user agent into a pseudonym. A visitor key serves for `state.retention`, then a
//! new one is made; the old one is kept another retention, so `events forget --ip` can still
//! find the rows made under it until they are purged.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub type Mac256 = Hmac<Sha256>;

/// A visitor pseudonym: the first 16 bytes of an HMAC.
pub type Pseudonym = [u8; 16];

pub struct Keys {
    cookie: Mac256,
    /// Newest first; the first one makes new pseudonyms.
    visitor: Vec<Mac256>,
}

impl Keys {
    /// Reads (or makes) the keys in `dir`, creating the folder; a bad folder fails at start.
    pub fn open(dir: &Path, retention: Duration) -> io::Result<Keys> {
        std::fs::create_dir_all(dir)?;
        let cookie = mac(&crate::key_file::read_or_create(&dir.join("cookie.key"))?);
        let today = crate::time::now_ms() / 86_400_000;
        let days = (retention.as_secs() / 86_400).max(1);
        let mut files = visitor_key_files(dir);
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        if files
            .first()
            .is_none_or(|(made, _)| today.saturating_sub(*made) >= days)
        {
            let path = dir.join(format!("visitor-{today}.key"));
            crate::key_file::read_or_create(&path)?;
            files.insert(0, (today, path));
        }
        let mut visitor = Vec::new();
        for (made, path) in files {
            // Rows under a key this old have been purged: nothing is left for it to find.
            if today.saturating_sub(made) >= 2 * days && !visitor.is_empty() {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            visitor.push(mac(&crate::key_file::read(&path)?));
        }
        Ok(Keys { cookie, visitor })
    }

    /// Keys kept somewhere else (a shared store): the cookie key, and the visitor keys newest
    /// first.
    pub fn from_bytes(cookie: &[u8; 32], visitor: &[[u8; 32]]) -> Keys {
        Keys {
            cookie: mac(cookie),
            visitor: visitor.iter().map(mac).collect(),
        }
    }

    pub fn cookie(&self) -> &Mac256 {
        &self.cookie
    }

    /// The pseudonym of an address and user agent, under the current key.
    pub fn pseudonym(&self, ip: IpAddr, ua: &str) -> Pseudonym {
        pseudonym(&self.visitor[0], ip, Some(ua))
    }

    /// The pseudonym of the address alone (what `forget --ip` looks rows up by), as hex.
    pub fn ip_key(&self, ip: IpAddr) -> String {
        hex(&pseudonym(&self.visitor[0], ip, None))
    }

    /// The address's key under every visitor key still kept.
    pub fn ip_keys(&self, ip: IpAddr) -> Vec<String> {
        (self.visitor.iter())
            .map(|k| hex(&pseudonym(k, ip, None)))
            .collect()
    }
}

fn pseudonym(key: &Mac256, ip: IpAddr, ua: Option<&str>) -> Pseudonym {
    let mut m = key.clone();
    match ip.to_canonical() {
        IpAddr::V4(a) => m.update(&a.octets()),
        IpAddr::V6(a) => m.update(&a.octets()),
    }
    // Without a user agent it is the address's key, which no pseudonym can equal.
    match ua {
        Some(ua) => {
            m.update(b"\xffua");
            m.update(clip_ua(ua).as_bytes());
        }
        None => m.update(b"\xffip"),
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&m.finalize().into_bytes()[..16]);
    out
}

/// The part of a user agent a pseudonym is made of (what the writer is handed, too).
pub fn clip_ua(ua: &str) -> &str {
    const MAX: usize = 512;
    if ua.len() <= MAX {
        return ua;
    }
    let mut end = MAX;
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    &ua[..end]
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

pub fn unhex(s: &str) -> Option<Pseudonym> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let d = |c: u8| (c as char).to_digit(16);
        *o = (d(pair[0])? * 16 + d(pair[1])?) as u8;
    }
    Some(out)
}

fn mac(key: &[u8; 32]) -> Mac256 {
    // HMAC takes keys of any length.
    Mac256::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn visitor_key_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let day = name
                .to_str()?
                .strip_prefix("visitor-")?
                .strip_suffix(".key")?;
            Some((day.parse().ok()?, e.path()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_shared_and_a_visitor_key_is_replaced_after_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let ret = Duration::from_secs(90 * 86_400);
        let a = Keys::open(dir.path(), ret).unwrap();
        let b = Keys::open(dir.path(), ret).unwrap();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            a.pseudonym(ip, "ua"),
            b.pseudonym(ip, "ua"),
            "one machine, one key"
        );
        assert_ne!(a.pseudonym(ip, "ua"), a.pseudonym(ip, "other ua"));
        assert_eq!(a.ip_keys(ip), vec![a.ip_key(ip)]);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
        };
        assert_eq!(mode("cookie.key") & 0o777, 0o600);
        // A key made more than a retention ago is replaced, and kept for forget.
        let today = crate::time::now_ms() / 86_400_000;
        let old = dir.path().join(format!("visitor-{}.key", today - 100));
        std::fs::write(&old, [7u8; 32]).unwrap();
        for f in visitor_key_files(dir.path()) {
            if f.1 != old {
                std::fs::remove_file(f.1).unwrap();
            }
        }
        let c = Keys::open(dir.path(), ret).unwrap();
        assert_eq!(c.ip_keys(ip).len(), 2);
        assert_ne!(c.pseudonym(ip, "ua"), a.pseudonym(ip, "ua"));
        // Two retentions old: gone.
        let older = dir.path().join(format!("visitor-{}.key", today - 200));
        std::fs::write(&older, [8u8; 32]).unwrap();
        assert_eq!(Keys::open(dir.path(), ret).unwrap().ip_keys(ip).len(), 2);
        assert!(!older.exists());
        assert_eq!(unhex(&hex(&[0xab; 16])), Some([0xab; 16]));
    }
}
