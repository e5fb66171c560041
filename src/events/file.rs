//! The file sink: NDJSON, one file per UTC day, written in batches and flushed after each.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{time, Message};
use crate::metrics::Metrics;

/// Events drained from the queue per write.
const BATCH: usize = 1024;

pub struct FileSink {
    dir: PathBuf,
    day: String,
    file: Option<File>,
}

impl FileSink {
    /// Creates the folder if needed and checks it is writable, so a bad path fails at start.
    pub fn open(dir: &Path) -> io::Result<FileSink> {
        std::fs::create_dir_all(dir)?;
        let mut sink = FileSink {
            dir: dir.to_path_buf(),
            day: String::new(),
            file: None,
        };
        sink.file_for(time::now_ms())?;
        Ok(sink)
    }

    /// One file per UTC day and process: during a binary upgrade two flowgates write at once,
    /// and neither may interleave with the other.
    pub fn path_for_day(dir: &Path, day: &str) -> PathBuf {
        dir.join(format!("clicks-{day}-{}.ndjson", std::process::id()))
    }

    fn file_for(&mut self, now_ms: u64) -> io::Result<&mut File> {
        let day = time::date(now_ms);
        if self.file.is_none() || day != self.day {
            let path = Self::path_for_day(&self.dir, &day);
            self.file = Some(OpenOptions::new().create(true).append(true).open(path)?);
            self.day = day;
        }
        // Set just above.
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("no file"))
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        let file = self.file_for(time::now_ms())?;
        file.write_all(buf)?;
        file.flush()
    }
}

pub(super) fn run(mut sink: FileSink, mut rx: mpsc::Receiver<Message>, metrics: Arc<Metrics>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut closing = false;
    while !closing {
        // Block for the first message, then take whatever else is already queued.
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut count = 0u64;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Message::Event(ev) => {
                    if serde_json::to_writer(&mut buf, &ev).is_ok() {
                        buf.push(b'\n');
                        count += 1;
                    } else {
                        metrics.events.with_label_values(&["failed"]).inc();
                    }
                }
                Message::Close => closing = true,
            }
            if (count as usize) < BATCH {
                next = rx.try_recv().ok();
            }
        }
        metrics.event_queue_depth.set(rx.len() as i64);
        if buf.is_empty() {
            continue;
        }
        match sink.write(&buf) {
            Ok(()) => metrics.events.with_label_values(&["written"]).inc_by(count),
            Err(e) => {
                log::error!("click events: cannot write to {}: {e}", sink.dir.display());
                metrics.events.with_label_values(&["failed"]).inc_by(count);
            }
        }
        buf.clear();
    }
}
