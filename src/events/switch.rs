//! The configured sink on its worker thread, and the queue requests send to, replaceable
//! while serving: a reload that changes the sink or the privacy settings starts a new worker,
//! points the queue at it, and lets the old one deliver what it holds.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::{EventPolicy, EventQueue, EventWorker, FileSink, HttpSink, Record, Sink};
use crate::config::{Config, SinkKind};
use crate::metrics::Metrics;

/// Why the configured event sink cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{}: privacy.salt_dir: cannot keep the salt in {}: {source}", file.display(), dir.display())]
    Salt {
        file: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: events: {key} {}: {source}", file.display(), dir.display())]
    Dir {
        file: PathBuf,
        key: &'static str,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: events: sink: http needs events.http", file.display())]
    NoHttp { file: PathBuf },
    #[error("{}: events: {source}", file.display())]
    Worker {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// The sink `config` names, on its worker thread (none with `sink: none`), and its queue.
pub fn start(
    config: &Config,
    metrics: Arc<Metrics>,
) -> Result<(EventQueue, Option<EventWorker>), StartError> {
    let file = config.path.clone();
    let policy = EventPolicy::new(&config.privacy).map_err(|source| StartError::Salt {
        file: file.clone(),
        dir: config.privacy.salt_dir.clone(),
        source,
    })?;
    let ev = &config.events;
    let in_dir = |key: &'static str, dir: &Path| {
        let (file, dir) = (file.clone(), dir.to_path_buf());
        move |source| StartError::Dir {
            file,
            key,
            dir,
            source,
        }
    };
    let sink: Box<dyn Sink> = match (*ev.sink, &ev.http) {
        (SinkKind::None, _) => return Ok((EventQueue::disabled(metrics), None)),
        (SinkKind::File, _) => Box::new(
            FileSink::open(&ev.file, metrics.clone()).map_err(in_dir("file.dir", &ev.file.dir))?,
        ),
        (SinkKind::Http, Some(http)) => Box::new(
            HttpSink::open(http, metrics.clone())
                .map_err(in_dir("http.spool_dir", &http.spool_dir))?,
        ),
        (SinkKind::Http, None) => return Err(StartError::NoHttp { file }),
    };
    let (queue, worker) = EventWorker::start(sink, ev.queue, ev.batch.clone(), policy, metrics)
        .map_err(|source| StartError::Worker { file, source })?;
    Ok((queue, Some(worker)))
}

/// The queue requests send to, and the worker behind it.
pub struct LiveEvents {
    queue: ArcSwap<EventQueue>,
    worker: Mutex<Option<EventWorker>>,
}

impl LiveEvents {
    pub fn new(queue: EventQueue, worker: Option<EventWorker>) -> LiveEvents {
        LiveEvents {
            queue: ArcSwap::from_pointee(queue),
            worker: Mutex::new(worker),
        }
    }

    /// Never waits (see `EventQueue::send`).
    pub fn send(&self, record: Record) {
        self.queue.load().send(record);
    }

    pub fn is_enabled(&self) -> bool {
        self.queue.load().is_enabled()
    }

    /// Sends from now on to `queue`; the worker it replaces delivers what it holds and stops,
    /// on a thread of its own (a collector that is down must not hold up the reload).
    pub fn replace(&self, queue: EventQueue, worker: Option<EventWorker>) {
        self.queue.store(Arc::new(queue));
        let old = std::mem::replace(&mut *self.lock(), worker);
        if let Some(old) = old {
            let closing = std::thread::Builder::new()
                .name("flowgate-events-old".into())
                .spawn(move || old.close());
            if let Err(e) = closing {
                log::warn!("cannot close the previous event worker: {e}");
            }
        }
    }

    /// Delivers everything queued, then stops the worker.
    pub fn close(&self) {
        let worker = self.lock().take();
        if let Some(w) = worker {
            w.close();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<EventWorker>> {
        self.worker.lock().unwrap_or_else(|e| e.into_inner())
    }
}
