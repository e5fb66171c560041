//! Forwarding conversions to the traffic sources their clicks came from (`sources.*.postback`
//! in the rules): at least once, in order per source, never again once the source answered
//! 2xx. A job is spooled before it is sent, so a source that is down, or a restart, delays it
//! and loses nothing; the conversion's id goes with every attempt as `Idempotency-Key`.
//! Every outcome is an event (`type: postback`) and `flowgate_postbacks_total`.
//!
//! One thread sends for every source; requests only hand it a job and never wait.

mod facts;
mod lane;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::events::{ConversionEvent, PostbackEvent, Record};
use crate::metrics::Metrics;
use crate::rules::sources::{Facts, Rendered};
use crate::rules::Rules;
use crate::state::StoredClick;
pub use facts::{conversion_id, extras, gather};
use lane::Lane;

/// Renders a source's postback from the rules serving now; `None` when the source (or its
/// postback) is gone from them.
pub type Render = Arc<dyn Fn(&str, &Facts) -> Option<Rendered> + Send + Sync>;
/// Where outcome events go (the event queue).
pub type Report = Arc<dyn Fn(Record) + Send + Sync>;

/// One conversion for one source, as spooled: names and facts (hashed fields hashed), never
/// the rendered request, whose headers may hold secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub source: String,
    pub click_id: String,
    pub status: Option<String>,
    pub facts: Facts,
}

pub struct Settings {
    /// One spool folder per source under it.
    pub dir: PathBuf,
    pub timeout: Duration,
    /// Quick attempts after the first before the job waits for the source's backoff.
    pub retries: u32,
    /// Per source; past it the oldest go, counted as dropped.
    pub max_bytes: u64,
    /// Jobs waiting for the thread; when full, new ones are dropped and counted.
    pub queue: usize,
}

impl Settings {
    pub fn new(dir: PathBuf) -> Settings {
        Settings {
            dir,
            timeout: Duration::from_secs(5),
            retries: 2,
            max_bytes: 64 << 20,
            queue: 4096,
        }
    }
}

/// What `forward` did with a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// Spooled and on its way.
    Queued,
    /// The source does not take this status (`statuses:`).
    Filtered,
    /// The click has no source, or its source no postback.
    NotForwarded,
    /// The forwarder's queue was full.
    Dropped,
}

enum Message {
    Job(Box<Job>),
    Close,
}

/// What the sending thread shares with its lanes.
pub(crate) struct Ctx {
    agent: ureq::Agent,
    render: Render,
    report: Report,
    metrics: Arc<Metrics>,
    retries: u32,
}

impl Ctx {
    /// One outcome: its event and its count.
    fn tell(&self, job: &Job, outcome: &str, error: Option<String>) {
        tell(&self.metrics, &self.report, job, outcome, error);
    }
}

fn tell(metrics: &Metrics, report: &Report, job: &Job, outcome: &str, error: Option<String>) {
    (metrics.postbacks)
        .with_label_values(&[&job.source, outcome])
        .inc();
    report(Record::Postback(PostbackEvent {
        ts: crate::time::rfc3339(crate::time::now_ms()),
        click_id: job.click_id.clone(),
        conversion_id: job.id.clone(),
        source: job.source.clone(),
        conversion_status: job.status.clone(),
        outcome: outcome.to_string(),
        error,
    }));
}

pub struct Forwarder {
    tx: SyncSender<Message>,
    thread: Mutex<Option<JoinHandle<()>>>,
    metrics: Arc<Metrics>,
    report: Report,
}

/// How often the thread looks at sources that are down.
const TICK: Duration = Duration::from_millis(100);

impl Forwarder {
    /// Starts the sending thread; sources spooled by an earlier run are sent first.
    pub fn start(
        settings: Settings,
        render: Render,
        report: Report,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Forwarder> {
        std::fs::create_dir_all(&settings.dir)?;
        let ctx = Ctx {
            agent: crate::events::deliver::agent(settings.timeout),
            render,
            report: report.clone(),
            metrics: metrics.clone(),
            retries: settings.retries,
        };
        let mut lanes = HashMap::new();
        for entry in std::fs::read_dir(&settings.dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && !name.starts_with('.') {
                let lane = Lane::open(&settings.dir, &name, settings.max_bytes, &ctx)?;
                lanes.insert(name, lane);
            }
        }
        let (tx, rx) = mpsc::sync_channel(settings.queue + 1);
        let thread = std::thread::Builder::new()
            .name("flowgate-postbacks".into())
            .spawn(move || run(rx, lanes, settings, ctx))?;
        Ok(Forwarder {
            tx,
            thread: Mutex::new(Some(thread)),
            metrics,
            report,
        })
    }

    /// The attribution hook: a conversion found its click. If the click's source has a
    /// postback and takes this status, the conversion goes to it. Never waits.
    pub fn forward(
        &self,
        rules: &Rules,
        click: &StoredClick,
        conversion: &ConversionEvent,
        extras: &[(String, String)],
    ) -> Forwarded {
        let Some(name) = click.source.as_deref() else {
            return Forwarded::NotForwarded;
        };
        let Some(source) = rules.sources.iter().find(|s| &*s.name == name) else {
            return Forwarded::NotForwarded;
        };
        let Some(plan) = &source.postback else {
            return Forwarded::NotForwarded;
        };
        let status = conversion.conversion_status.clone();
        let job = Job {
            id: conversion_id(&click.click_id, status.as_deref()),
            source: name.to_string(),
            click_id: click.click_id.clone(),
            status,
            facts: gather(source, click, conversion, extras),
        };
        if !plan.forwards(job.status.as_deref()) {
            tell(&self.metrics, &self.report, &job, "filtered", None);
            return Forwarded::Filtered;
        }
        match self.tx.try_send(Message::Job(Box::new(job))) {
            Ok(()) => Forwarded::Queued,
            Err(
                TrySendError::Full(Message::Job(job))
                | TrySendError::Disconnected(Message::Job(job)),
            ) => {
                tell(
                    &self.metrics,
                    &self.report,
                    &job,
                    "dropped",
                    Some("queue full".into()),
                );
                Forwarded::Dropped
            }
            Err(_) => Forwarded::Dropped,
        }
    }

    /// Spools what is queued, then stops the thread; what was not delivered waits on disk.
    pub fn close(&self) {
        let thread = self.thread.lock().map(|mut t| t.take()).unwrap_or(None);
        if let Some(t) = thread {
            if self.tx.send(Message::Close).is_ok() {
                let _ = t.join();
            }
        }
    }
}

/// The process's forwarder: postbacks rendered from the snapshot serving when each is sent,
/// outcomes into the event queue, spooled under the state's folder (`postbacks/<source>/`).
pub fn serving(
    live: Arc<crate::snapshot::Live>,
    events: Arc<crate::events::LiveEvents>,
    state_dir: &std::path::Path,
    metrics: Arc<Metrics>,
) -> std::io::Result<Forwarder> {
    let render: Render = Arc::new(move |name, facts| {
        let snap = live.current();
        let source = snap.rules.sources.iter().find(|s| &*s.name == name)?;
        source.postback.as_ref().map(|p| p.render(facts))
    });
    let report: Report = Arc::new(move |record| events.send(record));
    Forwarder::start(
        Settings::new(state_dir.join("postbacks")),
        render,
        report,
        metrics,
    )
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.close();
    }
}

fn run(
    rx: mpsc::Receiver<Message>,
    mut lanes: HashMap<String, Lane>,
    settings: Settings,
    ctx: Ctx,
) {
    loop {
        let closing = match rx.recv_timeout(TICK) {
            Ok(Message::Job(job)) => {
                if !lanes.contains_key(&job.source) {
                    match Lane::open(&settings.dir, &job.source, settings.max_bytes, &ctx) {
                        Ok(lane) => {
                            lanes.insert(job.source.clone(), lane);
                        }
                        Err(e) => {
                            log::error!("postbacks: {}: cannot open its spool: {e}", job.source);
                            ctx.tell(&job, "dropped", Some(format!("spool: {e}")));
                            continue;
                        }
                    }
                }
                if let Some(lane) = lanes.get_mut(&job.source) {
                    lane.push(&job, &ctx);
                }
                false
            }
            Ok(Message::Close) | Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => false,
        };
        if closing {
            // Anything still in the channel is spooled, for the next run.
            while let Ok(Message::Job(job)) = rx.try_recv() {
                if let Some(lane) = lanes.get_mut(&job.source) {
                    lane.push(&job, &ctx);
                }
            }
            return;
        }
        let now = Instant::now();
        for lane in lanes.values_mut() {
            lane.pump(now, &ctx);
        }
    }
}
