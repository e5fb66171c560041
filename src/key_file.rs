//! 32-byte secrets kept in files (the events' daily salts, the state's cookie and visitor
//! keys): private to the process's user, and made exactly once even when two processes (an
//! upgrade, `events forget` beside a running flowgate) race for the same one.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn read(path: &Path) -> io::Result<[u8; 32]> {
    let bytes = std::fs::read(path)?;
    bytes
        .try_into()
        .map_err(|_| io::Error::other(format!("{} is not a 32-byte key", path.display())))
}

/// The key in `path`, made (random, mode 0600) if there is none yet.
pub fn read_or_create(path: &Path) -> io::Result<[u8; 32]> {
    match read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).map_err(io::Error::other)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&key)?;
    f.sync_all()?;
    // hard_link fails if another process made the key first: then theirs is the key.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(e),
    }
}
