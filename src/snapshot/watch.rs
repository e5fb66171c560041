//! Reload on file change. notify says *that* something changed under a watched folder; a
//! fingerprint of the files' metadata says *whether* it is a change we serve from. Folders are
//! watched, not files, and re-armed after every change, so editors that write by rename and
//! config managers that swap a symlinked folder (Kubernetes ConfigMaps) are both seen. A
//! once-a-second poll of the fingerprint covers anything notify misses. The watcher only asks
//! for a reload; its caller runs it and records what it did.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

/// Quiet time after an event before reading files, so a burst of writes is one reload.
const DEBOUNCE: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_secs(1);

/// Starts the watcher thread; it runs for the life of the process and calls `changed` once
/// per settled change of what `sources` names. The folders are watched and the files
/// fingerprinted before this returns, so no change made after it is missed. `sources` is
/// asked again every cycle: a reloaded config may name other files.
pub fn spawn(
    sources: impl Fn() -> Sources + Send + 'static,
    changed: impl FnMut() + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel();
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // The fingerprint reads the watched folders, and reading is an access event: waking
            // for those, the watcher woke itself 30 times a second, forever.
            if event.is_ok_and(|e| e.kind.is_access()) {
                return;
            }
            let _ = tx.send(());
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!("watch: file notifications unavailable ({e}); polling every second");
                None
            }
        };
    let watched = sources();
    let armed = arm(watcher.as_mut(), &watched, &[]);
    let last = fingerprint(&watched);
    let state = State {
        watched,
        armed,
        last,
    };
    std::thread::Builder::new()
        .name("flowgate-watch".into())
        .spawn(move || run(watcher, &rx, state, sources, changed))
        .map(|_| ())
}

/// What the watcher thread knows: the sources it watches, the paths armed for them, and
/// the fingerprint the serving snapshot was built from.
struct State {
    watched: Sources,
    armed: Vec<PathBuf>,
    last: u64,
}

fn run(
    mut watcher: Option<notify::RecommendedWatcher>,
    rx: &mpsc::Receiver<()>,
    mut st: State,
    current: impl Fn() -> Sources,
    mut changed: impl FnMut(),
) {
    loop {
        match rx.recv_timeout(POLL) {
            Ok(()) => while rx.try_recv().is_ok() {},
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Without notifications the sender is gone from the start: the poll carries on.
            Err(mpsc::RecvTimeoutError::Disconnected) if watcher.is_none() => {
                std::thread::sleep(POLL)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let sources = current();
        if sources != st.watched {
            // A config reload named other files and has built its snapshot from them.
            st.armed = arm(watcher.as_mut(), &sources, &st.armed);
            st.last = fingerprint(&sources);
            st.watched = sources;
            continue;
        }
        let sources = &st.watched;
        // Files written in place pass through half-written states: build only from files
        // that stayed the same for a whole debounce period.
        let mut now = fingerprint(sources);
        loop {
            std::thread::sleep(DEBOUNCE);
            let again = fingerprint(sources);
            if again == now {
                break;
            }
            now = again;
        }
        if now == st.last {
            continue;
        }
        st.last = now;
        st.armed = arm(watcher.as_mut(), sources, &st.armed);
        changed();
    }
}

/// What a snapshot is built from: folders read whole, and single data files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub folders: Vec<PathBuf>,
    pub files: Vec<PathBuf>,
}

/// (Re)watches every folder and every data file's folder; returns what is watched now.
fn arm(
    watcher: Option<&mut notify::RecommendedWatcher>,
    s: &Sources,
    old: &[PathBuf],
) -> Vec<PathBuf> {
    let Some(w) = watcher else {
        return Vec::new();
    };
    for p in old {
        let _ = w.unwatch(p);
    }
    let mut watched = Vec::new();
    let mut watch = |p: &Path, mode| {
        if watched.iter().any(|w: &PathBuf| w == p) {
            return;
        }
        match w.watch(p, mode) {
            Ok(()) => watched.push(p.to_path_buf()),
            Err(e) => log::debug!("watch {}: {e}", p.display()),
        }
    };
    for folder in &s.folders {
        watch(folder, RecursiveMode::Recursive);
        // The folder itself may be replaced (a symlink swapped to a new version).
        if let Some(parent) = folder.parent() {
            watch(parent, RecursiveMode::NonRecursive);
        }
    }
    for file in &s.files {
        if let Some(parent) = file.parent() {
            watch(parent, RecursiveMode::NonRecursive);
        }
    }
    watched
}

/// Size, modification time and inode of every source file, following symlinks.
pub fn fingerprint(s: &Sources) -> u64 {
    let mut h = DefaultHasher::new();
    for folder in &s.folders {
        hash_tree(folder, 0, &mut h);
    }
    for file in &s.files {
        hash_file(file, &mut h);
    }
    h.finish()
}

fn hash_tree(dir: &Path, depth: usize, h: &mut DefaultHasher) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        dir.hash(h);
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            if depth < 4 {
                hash_tree(&p, depth + 1, h);
            }
        } else {
            hash_file(&p, h);
        }
    }
}

fn hash_file(p: &Path, h: &mut DefaultHasher) {
    use std::os::unix::fs::MetadataExt;
    p.hash(h);
    if let Ok(m) = std::fs::metadata(p) {
        (m.len(), m.mtime(), m.mtime_nsec(), m.ino()).hash(h);
    }
}
