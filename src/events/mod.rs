//! Click and conversion events: built on the request path, handed to a bounded queue without
//! ever waiting, batched by a worker thread (count, bytes, age) and delivered by a sink.

mod click_id;
pub mod clickhouse;
pub mod deliver;
mod file;
mod http;
mod pseudonym;
mod record;
pub mod spool;
mod switch;

use std::collections::BTreeMap;
use std::sync::mpsc::{self, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::BatchConfig;
use crate::metrics::Metrics;
pub use click_id::new_click_id;
pub use file::{forget, FileSink};
pub use http::HttpSink;
pub use pseudonym::Pseudonymizer;
pub use record::{ClickNames, ClickRecord, EventPolicy, Outcome, Seen, SourceOf};
pub use switch::{start, LiveEvents, StartError};

/// One line of the event stream; `type` tells clicks from conversions.
// Events travel boxed (one allocation when queued), so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    Click(ClickEvent),
    Conversion(ConversionEvent),
    Postback(PostbackEvent),
    #[serde(rename = "lp_click")]
    LpClick(LpClickEvent),
}

/// One routing decision, as the collector receives it.
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
    /// A `rate` condition found the visitor over its rate (only written when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rate_limited: bool,
    /// No earlier click of the visitor in the campaign within `state.unique_window`
    /// (absent without a campaign, and when no rule asks for state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<bool>,
    /// The traffic source (`sources:` in the rules) whose `match` held for the click.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The source's params from the click URL; fields under its `hash:` only as SHA-256.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// The TLS client's JA4 fingerprint (absent on a plain listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// The search-engine crawler the user agent claims (`intel.crawlers` names), and whether
    /// the address is in its published ranges; both absent when it claims none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crawler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crawler_verified: Option<bool>,
}

/// A conversion reported to the postback path, tied to its click by `click_id`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ConversionEvent {
    pub ts: String,
    pub click_id: String,
    pub payout: Option<f64>,
    pub currency: Option<String>,
    /// The tracker's word for it (`approved`, `pending`, ...); not the HTTP status of clicks.
    pub conversion_status: Option<String>,
    /// The click's, once the click store found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The click store knows no click by this id (or did not answer in time): recorded,
    /// never dropped, never forwarded (only written when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unattributed: bool,
}

/// A lander's click-through (`click_path`): the click it continues and where `then` sent it.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct LpClickEvent {
    pub ts: String,
    /// The lander's click; empty when the click was unknown or expired.
    pub click_id: String,
    pub campaign: Option<String>,
    pub flow: Option<String>,
    pub route: String,
    pub action: String,
    pub status: u16,
    /// No click was found: the rules' fallback answered (only written when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown_click: bool,
}

/// A conversion forwarded to its click's traffic source (`sources.*.postback`): what became
/// of it. Carries names and ids only, never the rendered request (it may hold secrets).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PostbackEvent {
    pub ts: String,
    pub click_id: String,
    /// The conversion's id, sent as the `Idempotency-Key` header.
    pub conversion_id: String,
    pub source: String,
    pub conversion_status: Option<String>,
    /// `delivered`, `retrying` (kept in the spool), `rejected` (a 4xx: kept aside, not
    /// retried), `filtered` (a status the source does not take), `dropped`.
    pub outcome: String,
    /// Why it was not delivered (`HTTP 503`, a network error), when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What requests hand to the queue; the worker turns it into an `Event`.
// Records travel boxed (one allocation when queued), so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    /// Boxed where it is captured, so the request path moves a pointer, not the record.
    Click(Box<ClickRecord>),
    Conversion(ConversionEvent),
    Postback(PostbackEvent),
    LpClick(LpClickEvent),
}

impl Record {
    pub fn into_event(self, policy: &EventPolicy) -> Event {
        match self {
            Record::Click(c) => Event::Click(c.to_event(policy)),
            Record::Conversion(c) => Event::Conversion(c),
            Record::Postback(p) => Event::Postback(p),
            Record::LpClick(c) => Event::LpClick(c),
        }
    }
}

// `Close` is sent once; every other message is a record anyway.
#[allow(clippy::large_enum_variant)]
enum Message {
    Record(Record),
    /// Deliver what is queued, then stop: sent once at shutdown.
    Close,
}

/// Where batches go. Each call gets whole NDJSON lines.
pub trait Sink: Send {
    /// One event as a line of the collector's format (without the newline): the event's own
    /// JSON unless the collector wants rows of its own shape.
    fn encode(&mut self, event: &Event, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, event)
    }
    /// Takes a batch; a sink that cannot deliver now keeps it (spool) rather than lose it.
    fn deliver(&mut self, batch: &Batch);
    /// Periodic work: retention, spool replay. `now` is passed for testability.
    fn tick(&mut self, now: Instant);
    /// Last call before exit.
    fn close(&mut self);
}

/// NDJSON lines waiting to be delivered together.
pub struct Batch {
    pub lines: Vec<u8>,
    pub count: u64,
    started: Option<Instant>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            lines: Vec::with_capacity(64 * 1024),
            count: 0,
            started: None,
        }
    }

    pub fn push(&mut self, event: &Event) -> serde_json::Result<()> {
        self.push_encoded(|out| serde_json::to_writer(out, event))
    }

    /// Appends the line `encode` writes; a failed one leaves no trace.
    pub fn push_encoded(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
    ) -> serde_json::Result<()> {
        let before = self.lines.len();
        if let Err(e) = encode(&mut self.lines) {
            self.lines.truncate(before);
            return Err(e);
        }
        self.lines.push(b'\n');
        self.count += 1;
        self.started.get_or_insert_with(Instant::now);
        Ok(())
    }

    fn is_due(&self, limits: &BatchConfig, now: Instant) -> bool {
        self.count as usize >= limits.max_events
            || self.lines.len() as u64 >= limits.max_bytes.0
            || self
                .started
                .is_some_and(|t| now.duration_since(t) >= limits.max_wait.0)
    }

    pub fn clear(&mut self) {
        self.lines.clear();
        self.count = 0;
        self.started = None;
    }
}

/// The request side of the queue.
#[derive(Clone)]
pub struct EventQueue {
    tx: Option<SyncSender<Message>>,
    metrics: Arc<Metrics>,
}

impl EventQueue {
    /// A queue whose events go nowhere (`sink: none`).
    pub fn disabled(metrics: Arc<Metrics>) -> EventQueue {
        EventQueue { tx: None, metrics }
    }

    /// False with `sink: none`: then there is no point capturing records.
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Never waits: when the queue is full the record is dropped and counted.
    pub fn send(&self, record: Record) {
        let Some(tx) = &self.tx else {
            return;
        };
        match tx.try_send(Message::Record(record)) {
            Ok(()) => self.metrics.event_queue_depth.inc(),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.events.with_label_values(&["dropped"]).inc()
            }
        }
    }
}

/// The worker thread that drains the queue into the sink.
pub struct EventWorker {
    tx: SyncSender<Message>,
    thread: std::thread::JoinHandle<()>,
}

/// How often the sink gets `tick` when nothing else happens.
const TICK: Duration = Duration::from_millis(250);
/// How long the worker sleeps when the queue is empty.
const POLL: Duration = Duration::from_millis(5);

impl EventWorker {
    pub fn start(
        sink: Box<dyn Sink>,
        capacity: usize,
        limits: BatchConfig,
        policy: EventPolicy,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(EventQueue, EventWorker)> {
        // One slot is kept for `Close`, so shutdown never waits on a full queue forever.
        let (tx, rx) = mpsc::sync_channel(capacity + 1);
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("flowgate-events".into())
            .spawn(move || run(sink, rx, limits, policy, m))?;
        let queue = EventQueue {
            tx: Some(tx.clone()),
            metrics,
        };
        Ok((queue, EventWorker { tx, thread }))
    }

    /// Delivers everything queued, then stops the worker.
    pub fn close(self) {
        if self.tx.send(Message::Close).is_ok() {
            let _ = self.thread.join();
        }
    }
}

fn run(
    mut sink: Box<dyn Sink>,
    rx: mpsc::Receiver<Message>,
    limits: BatchConfig,
    policy: EventPolicy,
    metrics: Arc<Metrics>,
) {
    let mut batch = Batch::new();
    let mut last_tick = Instant::now();
    loop {
        let wait = match batch.started {
            Some(t) => limits.max_wait.0.saturating_sub(t.elapsed()).min(TICK),
            None => TICK,
        };
        // Polled, never waited on: a request handing over its record then never has to
        // wake this thread, which costs a context switch per request at full load.
        let closing = match rx.try_recv() {
            Ok(Message::Record(record)) => {
                metrics.event_queue_depth.dec();
                let event = record.into_event(&policy);
                if batch.push_encoded(|out| sink.encode(&event, out)).is_err() {
                    metrics.events.with_label_values(&["failed"]).inc();
                }
                false
            }
            Ok(Message::Close) | Err(TryRecvError::Disconnected) => true,
            Err(TryRecvError::Empty) => {
                std::thread::sleep(wait.min(POLL));
                false
            }
        };
        let now = Instant::now();
        if batch.count > 0 && (closing || batch.is_due(&limits, now)) {
            sink.deliver(&batch);
            batch.clear();
        }
        if closing {
            sink.close();
            return;
        }
        if now.duration_since(last_tick) >= TICK {
            sink.tick(now);
            last_tick = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    /// A sink that blocks until released, so the queue behind it fills.
    struct Stuck(Arc<AtomicBool>, Arc<AtomicI64>);

    impl Sink for Stuck {
        fn deliver(&mut self, batch: &Batch) {
            while !self.0.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.1.fetch_add(batch.count as i64, Ordering::SeqCst);
        }
        fn tick(&mut self, _: Instant) {}
        fn close(&mut self) {}
    }

    fn conversion(i: usize) -> Record {
        Record::Conversion(ConversionEvent {
            ts: String::new(),
            click_id: i.to_string(),
            ..ConversionEvent::default()
        })
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let (release, delivered) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicI64::new(0)),
        );
        let sink = Box::new(Stuck(release.clone(), delivered.clone()));
        let limits = BatchConfig {
            max_events: 1,
            ..BatchConfig::default()
        };
        let policy = EventPolicy::new(&crate::config::PrivacyConfig::default()).unwrap();
        let (queue, worker) = EventWorker::start(sink, 4, limits, policy, metrics.clone()).unwrap();
        let started = Instant::now();
        for i in 0..100 {
            queue.send(conversion(i));
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "sending never waits"
        );
        let dropped = metrics.events.with_label_values(&["dropped"]).get();
        assert!((90..=96).contains(&dropped), "dropped {dropped}");
        release.store(true, Ordering::SeqCst);
        worker.close();
        assert_eq!(
            delivered.load(Ordering::SeqCst) as u64 + dropped,
            100,
            "every event delivered or counted"
        );
    }
}
