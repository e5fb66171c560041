//! Batches the collector could not take, on disk until it can: one file per batch, named so
//! that sorting by name replays them in order. Bounded: past `max_bytes` the oldest go first,
//! counted as dropped. A file being replayed is claimed by renaming, so two flowgates sharing
//! the spool during an upgrade never send the same batch at once. Click events and
//! forwarded postbacks each keep one; what it counts goes to the meters its owner gives.

use std::io;
use std::path::{Path, PathBuf};

use prometheus::{IntCounter, IntGauge};

use crate::metrics::Metrics;

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    seq: u64,
    meters: SpoolMeters,
}

/// Where a spool counts what it lines, drops and refuses (lines), and its size in bytes.
#[derive(Clone, Default)]
pub struct SpoolMeters {
    pub spooled: Option<IntCounter>,
    pub dropped: Option<IntCounter>,
    pub failed: Option<IntCounter>,
    pub bytes: Option<IntGauge>,
}

impl SpoolMeters {
    /// The event sink's: `flowgate_events_total{outcome}` and `flowgate_event_spool_bytes`.
    pub fn events(metrics: &Metrics) -> SpoolMeters {
        let outcome = |o: &str| Some(metrics.events.with_label_values(&[o]));
        SpoolMeters {
            spooled: outcome("spooled"),
            dropped: outcome("dropped"),
            failed: outcome("failed"),
            bytes: Some(metrics.spool_bytes.clone()),
        }
    }
}

fn add(counter: &Option<IntCounter>, n: u64) {
    if let Some(c) = counter {
        c.inc_by(n);
    }
}

/// A spooled batch taken for replay.
pub struct Claim {
    original: PathBuf,
    claimed: PathBuf,
    pub lines: Vec<u8>,
    pub count: u64,
}

impl Spool {
    pub fn open(dir: &Path, max_bytes: u64, meters: SpoolMeters) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            seq: 0,
            meters,
        };
        spool.release_abandoned_claims();
        spool.publish_size();
        Ok(spool)
    }

    /// Claims left by a process that no longer runs go back in line.
    fn release_abandoned_claims(&self) {
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some((base, pid)) = name.split_once(".claimed-") else {
                continue;
            };
            let alive = Path::new("/proc").join(pid).exists();
            if !alive {
                let _ = std::fs::rename(&path, self.dir.join(base));
            }
        }
    }

    /// Spooled batch files, oldest first.
    fn files(&self) -> Vec<(PathBuf, u64)> {
        let mut v: Vec<(PathBuf, u64)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let p = e.path();
                let spooled = p.extension().is_some_and(|x| x == "ndjson");
                let len = e.metadata().ok()?.len();
                spooled.then_some((p, len))
            })
            .collect();
        v.sort();
        v
    }

    pub fn is_empty(&self) -> bool {
        self.files().is_empty()
    }

    fn publish_size(&self) {
        if let Some(gauge) = &self.meters.bytes {
            let bytes: u64 = self.files().iter().map(|(_, n)| n).sum();
            gauge.set(bytes as i64);
        }
    }

    pub fn push(&mut self, lines: &[u8], count: u64) -> io::Result<()> {
        self.seq += 1;
        let name = format!(
            "{:016}-{:010}-{:08}.ndjson",
            crate::time::now_ms(),
            std::process::id(),
            self.seq
        );
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, lines)?;
        std::fs::rename(&tmp, &path)?;
        add(&self.meters.spooled, count);
        self.enforce_bound();
        self.publish_size();
        Ok(())
    }

    fn enforce_bound(&self) {
        let files = self.files();
        let mut total: u64 = files.iter().map(|(_, n)| n).sum();
        for (path, len) in files {
            if total <= self.max_bytes {
                break;
            }
            let lines = std::fs::read(&path).map_or(0, |b| count_lines(&b));
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
                log::warn!(
                    "spool full: dropped the oldest batch ({lines} lines) in {}",
                    self.dir.display()
                );
                add(&self.meters.dropped, lines);
            }
        }
    }

    /// The oldest batch, claimed for this process; `None` when the spool is empty.
    pub fn claim_oldest(&self) -> Option<Claim> {
        for (original, _) in self.files() {
            let claimed = PathBuf::from(format!(
                "{}.claimed-{}",
                original.display(),
                std::process::id()
            ));
            if std::fs::rename(&original, &claimed).is_err() {
                continue; // another process took it
            }
            match std::fs::read(&claimed) {
                Ok(lines) => {
                    let count = count_lines(&lines);
                    return Some(Claim {
                        original,
                        claimed,
                        lines,
                        count,
                    });
                }
                Err(e) => {
                    log::error!("spool: cannot read {}: {e}", claimed.display());
                    let _ = std::fs::rename(&claimed, &original);
                }
            }
        }
        None
    }

    /// Delivered: gone from the spool.
    pub fn done(&self, c: Claim) {
        let _ = std::fs::remove_file(&c.claimed);
        self.publish_size();
    }

    /// Not delivered: back in line, still first.
    pub fn release(&self, c: Claim) {
        let _ = std::fs::rename(&c.claimed, &c.original);
    }

    /// The collector refused it for good (a 4xx): kept aside for the operator, never retried.
    pub fn reject(&self, lines: &[u8], count: u64) {
        let dir = self.dir.join("rejected");
        let name = format!(
            "{:016}-{:010}.ndjson",
            crate::time::now_ms(),
            std::process::id()
        );
        let kept =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(&name), lines));
        if let Err(e) = kept {
            log::error!("spool: cannot keep a rejected batch: {e}");
        }
        add(&self.meters.failed, count);
        self.publish_size();
    }
}

fn count_lines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn replays_in_order_and_drops_the_oldest_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let meters = SpoolMeters::events(&metrics);
        let mut spool = Spool::open(dir.path(), 100, meters).unwrap();
        for i in 0..5 {
            let lines = format!("{{\"n\":{i}}}\n{{\"n\":{i}}}\n");
            spool.push(lines.as_bytes(), 2).unwrap();
        }
        // Each batch is 16 bytes: 6 fit in 100, so nothing is dropped yet.
        assert_eq!(metrics.events.with_label_values(&["dropped"]).get(), 0);
        for i in 5..9 {
            spool
                .push(format!("{{\"n\":{i}}}{}\n", " ".repeat(30)).as_bytes(), 1)
                .unwrap();
        }
        assert!(
            metrics.events.with_label_values(&["dropped"]).get() > 0,
            "oldest dropped"
        );
        let first = spool.claim_oldest().unwrap();
        let text = String::from_utf8(first.lines.clone()).unwrap();
        assert!(!text.contains("\"n\":0"), "the oldest went first: {text}");
        // A released claim stays first in line.
        spool.release(first);
        let again = spool.claim_oldest().unwrap();
        assert_eq!(String::from_utf8(again.lines.clone()).unwrap(), text);
        spool.done(again);
        let mut rest = Vec::new();
        while let Some(c) = spool.claim_oldest() {
            rest.push(String::from_utf8(c.lines.clone()).unwrap());
            spool.done(c);
        }
        let n = |t: &String| {
            serde_json::from_str::<serde_json::Value>(t.lines().next().unwrap()).unwrap()["n"]
                .as_u64()
        };
        let order: Vec<_> = rest.iter().map(n).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "oldest first");
        assert!(spool.is_empty());
    }
}
