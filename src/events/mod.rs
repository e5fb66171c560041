//! Click events: one per request, handed to a bounded queue without ever blocking the
//! request, and written by a background worker.

mod file;
mod record;
pub mod time;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
pub use file::FileSink;
pub use record::{click_event, EventPolicy, Outcome};

/// One routing decision, as the collector receives it (one JSON object per line).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ClickEvent {
    pub ts: String,
    pub click_id: String,
    pub campaign: Option<String>,
    pub flow: Option<String>,
    pub route: String,
    pub action: String,
    pub status: u16,
    pub ip: Option<String>,
    pub country: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
    pub ip_lists: Vec<String>,
    pub anonymous: Vec<String>,
    pub bot: bool,
    pub device: String,
    pub ua: Option<String>,
    pub referer: Option<String>,
    pub host: String,
    pub path: String,
    /// Only the parameters the operator keeps (`privacy.query_params`).
    pub query: BTreeMap<String, String>,
    pub lang: Option<String>,
    pub upstream: Option<String>,
    pub duration_ms: f64,
}

enum Message {
    Event(Box<ClickEvent>),
    /// Flush and stop: sent once at shutdown.
    Close,
}

/// The request side of the queue.
#[derive(Clone)]
pub struct EventQueue {
    tx: Option<mpsc::Sender<Message>>,
    metrics: Arc<Metrics>,
}

impl EventQueue {
    /// A queue whose events go nowhere (`sink: none`); they are counted as dropped.
    pub fn disabled(metrics: Arc<Metrics>) -> EventQueue {
        EventQueue { tx: None, metrics }
    }

    /// Never waits: when the queue is full the event is dropped and counted.
    pub fn send(&self, event: ClickEvent) {
        let Some(tx) = &self.tx else {
            return;
        };
        match tx.try_send(Message::Event(Box::new(event))) {
            Ok(()) => {}
            Err(_) => self.metrics.events.with_label_values(&["dropped"]).inc(),
        }
        let depth = tx.max_capacity() - tx.capacity();
        self.metrics.event_queue_depth.set(depth as i64);
    }
}

/// Handle on the worker thread that drains the queue.
pub struct EventWorker {
    tx: mpsc::Sender<Message>,
    thread: std::thread::JoinHandle<()>,
}

impl EventWorker {
    /// Starts the file writer on its own thread; returns the queue for requests to use.
    pub fn start(
        sink: FileSink,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(EventQueue, EventWorker)> {
        let (tx, rx) = mpsc::channel(capacity);
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("flowgate-events".into())
            .spawn(move || file::run(sink, rx, m))?;
        let queue = EventQueue {
            tx: Some(tx.clone()),
            metrics,
        };
        Ok((queue, EventWorker { tx, thread }))
    }

    /// Writes out everything queued, then stops the worker.
    pub fn close(self) {
        if self.tx.blocking_send(Message::Close).is_ok() {
            let _ = self.thread.join();
        }
    }
}
