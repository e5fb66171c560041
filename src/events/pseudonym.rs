//! `privacy.ip: hash`: an HMAC-SHA256 of the address under a secret salt that changes every
//! UTC day. The same visitor is one pseudonym within a day and unlinkable across days. The
//! salt lives only in `privacy.salt_dir` (mode 0600), shared by processes on this machine so
//! a restart or upgrade keeps the day's pseudonyms; earlier days' salts are deleted.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type Salt = [u8; 32];

pub struct Pseudonymizer {
    dir: PathBuf,
    /// `(UTC day number, salt)` in use.
    current: RwLock<Option<(u64, Salt)>>,
}

impl Pseudonymizer {
    /// Creates the folder and today's salt, so a bad folder fails at start.
    pub fn open(dir: &Path) -> io::Result<Pseudonymizer> {
        std::fs::create_dir_all(dir)?;
        let p = Pseudonymizer {
            dir: dir.to_path_buf(),
            current: RwLock::new(None),
        };
        p.salt_for(today())?;
        Ok(p)
    }

    /// The pseudonym of an address today: 32 hex digits.
    pub fn pseudonym(&self, ip: IpAddr) -> Option<String> {
        let day = today();
        let cached = self
            .current
            .read()
            .ok()
            .and_then(|c| c.filter(|(d, _)| *d == day));
        let salt = match cached {
            Some((_, salt)) => salt,
            None => match self.salt_for(day) {
                Ok(s) => s,
                Err(e) => {
                    log::error!("privacy: cannot read or create today's salt: {e}; ip left out");
                    return None;
                }
            },
        };
        Some(hash(&salt, ip))
    }

    /// Every pseudonym `ip` has under a salt still on disk (for erasure requests).
    pub fn known_pseudonyms(&self, ip: IpAddr) -> Vec<String> {
        salt_files(&self.dir)
            .into_iter()
            .filter_map(|(_, p)| crate::key_file::read(&p).ok())
            .map(|salt| hash(&salt, ip))
            .collect()
    }

    fn salt_for(&self, day: u64) -> io::Result<Salt> {
        let path = self.dir.join(format!("salt-{day}"));
        let salt = crate::key_file::read_or_create(&path)?;
        for (d, old) in salt_files(&self.dir) {
            if d < day {
                let _ = std::fs::remove_file(old);
            }
        }
        if let Ok(mut c) = self.current.write() {
            *c = Some((day, salt));
        }
        Ok(salt)
    }
}

fn today() -> u64 {
    crate::time::now_ms() / 86_400_000
}

fn hash(salt: &Salt, ip: IpAddr) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(salt) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC takes keys of any length
    };
    match ip.to_canonical() {
        IpAddr::V4(a) => mac.update(&a.octets()),
        IpAddr::V6(a) => mac.update(&a.octets()),
    }
    let digest = mac.finalize().into_bytes();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn salt_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let day = name.to_str()?.strip_prefix("salt-")?.parse().ok()?;
            Some((day, e.path()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pseudonym_per_visitor_per_day_and_a_private_salt() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pseudonymizer::open(dir.path()).unwrap();
        let a = p.pseudonym("203.0.113.9".parse().unwrap()).unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(p.pseudonym("203.0.113.9".parse().unwrap()).unwrap(), a);
        assert_ne!(p.pseudonym("203.0.113.10".parse().unwrap()).unwrap(), a);
        // A second process on the same machine agrees.
        let q = Pseudonymizer::open(dir.path()).unwrap();
        assert_eq!(q.pseudonym("203.0.113.9".parse().unwrap()).unwrap(), a);
        use std::os::unix::fs::PermissionsExt;
        let (_, salt) = &salt_files(dir.path())[0];
        assert_eq!(
            std::fs::metadata(salt).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Yesterday's salt is deleted once today's exists.
        std::fs::write(dir.path().join("salt-1"), [7u8; 32]).unwrap();
        let r = Pseudonymizer::open(dir.path()).unwrap();
        assert_eq!(salt_files(dir.path()).len(), 1);
        assert_eq!(r.known_pseudonyms("203.0.113.9".parse().unwrap()), vec![a]);
    }
}
