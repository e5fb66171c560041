//! The file sink: NDJSON files per UTC day (or hour) and process, rotated by size, deleted
//! after `retain`. Writers and `flowgate events forget` take the file's lock, and a writer
//! whose file was replaced under it reopens the new one, so an erasure never loses a line.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Batch, Sink};
use crate::config::{FileSinkConfig, Rotate};
use crate::metrics::Metrics;
use crate::time;

const RETENTION_EVERY: Duration = Duration::from_secs(600);

pub struct FileSink {
    dir: PathBuf,
    rotate: Rotate,
    rotate_bytes: u64,
    retain: Duration,
    metrics: Arc<Metrics>,
    current: Option<Current>,
    last_retention: Option<Instant>,
}

struct Current {
    path: PathBuf,
    file: File,
    period: String,
    seq: u32,
    size: u64,
}

impl FileSink {
    /// Creates the folder if needed and opens today's file, so a bad path fails at start.
    pub fn open(cfg: &FileSinkConfig, metrics: Arc<Metrics>) -> io::Result<FileSink> {
        std::fs::create_dir_all(&cfg.dir)?;
        let mut sink = FileSink {
            dir: cfg.dir.clone(),
            rotate: cfg.rotate,
            rotate_bytes: cfg.rotate_bytes.0.max(1),
            retain: cfg.retain.0,
            metrics,
            current: None,
            last_retention: None,
        };
        sink.file_for(0)?;
        Ok(sink)
    }

    fn period(&self, now_ms: u64) -> String {
        match self.rotate {
            Rotate::Daily => time::date(now_ms),
            Rotate::Hourly => time::hour(now_ms),
        }
    }

    /// The file to append `len` bytes to: a new one for a new period or past the size limit.
    fn file_for(&mut self, len: u64) -> io::Result<&mut Current> {
        let period = self.period(time::now_ms());
        let next_seq = match &self.current {
            Some(c) if c.period == period && (c.size == 0 || c.size + len <= self.rotate_bytes) => {
                None
            }
            Some(c) if c.period == period => Some(c.seq + 1),
            _ => Some(0),
        };
        if let Some(seq) = next_seq {
            let name = format!("clicks-{period}-{}-{seq}.ndjson", std::process::id());
            let path = self.dir.join(name);
            let file = open_append(&path)?;
            let size = file.metadata()?.len();
            self.current = Some(Current {
                path,
                file,
                period,
                seq,
                size,
            });
        }
        self.current
            .as_mut()
            .ok_or_else(|| io::Error::other("no event file"))
    }

    fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        let cur = self.file_for(lines.len() as u64)?;
        let mut lock = Lock::exclusive(&cur.file)?;
        // `events forget` may have replaced the file since we opened it: follow the path.
        let mut meta = cur.file.metadata()?;
        if std::fs::metadata(&cur.path).map_or(true, |m| m.ino() != meta.ino()) {
            drop(lock);
            cur.file = open_append(&cur.path)?;
            lock = Lock::exclusive(&cur.file)?;
            meta = cur.file.metadata()?;
        }
        if let Err(e) = (&cur.file).write_all(lines) {
            // A full disk takes part of a batch: cut it off again, so the file holds whole
            // lines only and every line in it was counted written.
            if let Err(t) = cur.file.set_len(meta.len()) {
                log::error!(
                    "click events: cannot cut a partial batch from {}: {t}",
                    cur.path.display()
                );
            }
            return Err(e);
        }
        drop(lock);
        cur.size += lines.len() as u64;
        Ok(())
    }

    fn enforce_retention(&mut self) {
        let Some(cutoff) = SystemTime::now().checked_sub(self.retain) else {
            return;
        };
        for path in event_files(&self.dir) {
            let old = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            let ours = self.current.as_ref().is_some_and(|c| c.path == path);
            if old && !ours {
                match std::fs::remove_file(&path) {
                    Ok(()) => log::info!("retention: removed {}", path.display()),
                    Err(e) => log::warn!("retention: cannot remove {}: {e}", path.display()),
                }
            }
        }
    }
}

impl Sink for FileSink {
    fn deliver(&mut self, batch: &Batch) {
        match self.write(&batch.lines) {
            Ok(()) => self
                .metrics
                .events
                .with_label_values(&["written"])
                .inc_by(batch.count),
            Err(e) => {
                log::error!("click events: cannot write to {}: {e}", self.dir.display());
                self.metrics
                    .events
                    .with_label_values(&["failed"])
                    .inc_by(batch.count);
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        if self
            .last_retention
            .is_none_or(|t| now.duration_since(t) >= RETENTION_EVERY)
        {
            self.enforce_retention();
            self.last_retention = Some(now);
        }
    }

    fn close(&mut self) {}
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `flock(2)` on an open file, released on drop (drop it before closing the file).
struct Lock(std::os::unix::io::RawFd);

impl Lock {
    fn exclusive(file: &File) -> io::Result<Lock> {
        let fd = file.as_raw_fd();
        // SAFETY: flock on a valid open descriptor has no memory-safety preconditions.
        if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Lock(fd))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: as above; unlocking a descriptor that was since closed is a harmless EBADF.
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }
}

/// Event files in a folder (`clicks-*.ndjson`), sorted by name.
pub fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".ndjson") && p.is_file()
        })
        .collect();
    v.sort();
    v
}

/// Removes every line for which `matches` holds from every event file in `dirs`, each file
/// rewritten atomically under its lock. Returns how many lines were removed.
pub fn forget(dirs: &[&Path], matches: &dyn Fn(&serde_json::Value) -> bool) -> io::Result<usize> {
    let mut removed = 0;
    for dir in dirs {
        for path in event_files(dir) {
            removed += forget_in(&path, matches)?;
        }
    }
    Ok(removed)
}

fn forget_in(path: &Path, matches: &dyn Fn(&serde_json::Value) -> bool) -> io::Result<usize> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let lock = Lock::exclusive(&file)?;
    let mut kept = Vec::new();
    let mut removed = 0;
    for line in BufReader::new(&file).split(b'\n') {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let hit = serde_json::from_slice::<serde_json::Value>(&line).is_ok_and(|v| matches(&v));
        if hit {
            removed += 1;
        } else {
            kept.extend_from_slice(&line);
            kept.push(b'\n');
        }
    }
    if removed > 0 {
        let tmp = path.with_extension(format!("forget.{}", std::process::id()));
        let mut out = File::create(&tmp)?;
        out.write_all(&kept)?;
        out.sync_all()?;
        std::fs::rename(&tmp, path)?;
    }
    drop(lock);
    Ok(removed)
}
