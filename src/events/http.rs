//! The HTTP sink: POST NDJSON batches to a collector — ClickHouse's HTTP interface
//! (`INSERT ... FORMAT JSONEachRow`), Vector's `http_server`, anything that takes NDJSON.
//! Fast failures are retried with backoff and jitter; then the batch goes to the spool and
//! the sink stays "down", spooling new batches in order, until a replay gets through.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clickhouse::{insert_url, RowEncoder};
use super::deliver::{self, Backoff, Failure};
use super::spool::{Spool, SpoolMeters};
use super::{Batch, Event, Sink};
use crate::config::HttpSinkConfig;
use crate::metrics::Metrics;
use crate::url::encode_url;

/// How long one tick may spend replaying, so new events keep flowing into batches.
const REPLAY_BUDGET: Duration = Duration::from_millis(500);

pub struct HttpSink {
    agent: ureq::Agent,
    url: String,
    gzip: bool,
    headers: Vec<(String, String)>,
    retries: u32,
    /// Set when the collector is ClickHouse: rows typed for its schema.
    rows: Option<RowEncoder>,
    spool: Spool,
    metrics: Arc<Metrics>,
    /// While down, new batches go straight to the spool and replay waits for it.
    backoff: Backoff,
}

impl HttpSink {
    pub fn open(cfg: &HttpSinkConfig, metrics: Arc<Metrics>) -> std::io::Result<HttpSink> {
        let agent = deliver::agent(cfg.timeout.0);
        let headers = cfg.resolved_headers().to_vec();
        let spool = Spool::open(
            &cfg.spool_dir,
            cfg.spool_max_bytes.0,
            SpoolMeters::events(&metrics),
        )?;
        let url = encode_url(&cfg.url);
        let url = match &cfg.clickhouse {
            Some(ch) => insert_url(&url, ch),
            None => url,
        };
        let mut sink = HttpSink {
            agent,
            url,
            rows: cfg.clickhouse.as_ref().map(|_| RowEncoder::default()),
            gzip: cfg.gzip,
            headers,
            retries: cfg.retries,
            spool,
            metrics,
            backoff: Backoff::default(),
        };
        // Whatever an earlier run spooled is replayed before anything new.
        if !sink.spool.is_empty() {
            sink.backoff.retry_now();
        }
        Ok(sink)
    }

    fn post(&self, lines: &[u8]) -> Result<(), Failure> {
        let started = Instant::now();
        let mut req = self
            .agent
            .post(&self.url)
            .header("content-type", "application/x-ndjson");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let result = if self.gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let body = enc.write_all(lines).and_then(|()| enc.finish());
            match body {
                Ok(body) => req.header("content-encoding", "gzip").send(&body[..]),
                Err(e) => return Err(Failure::Transient(format!("gzip: {e}"))),
            }
        } else {
            req.send(lines)
        };
        self.metrics
            .sink_request_duration
            .observe(started.elapsed().as_secs_f64());
        deliver::judge(result)
    }

    /// A few quick attempts; a collector that is down is not waited for here.
    fn post_with_retries(&self, lines: &[u8]) -> Result<(), Failure> {
        self.backoff.with_retries(self.retries, || self.post(lines))
    }

    fn spool(&mut self, lines: &[u8], count: u64) {
        if let Err(e) = self.spool.push(lines, count) {
            log::error!("events: cannot spool {count} events: {e}");
            self.metrics
                .events
                .with_label_values(&["failed"])
                .inc_by(count);
        }
    }

    fn mark_down(&mut self, why: &str) {
        if self.backoff.failed() {
            log::warn!("events: collector unavailable ({why}); spooling until it answers");
        }
    }

    fn replay(&mut self, now: Instant) {
        if self.backoff.waiting(now) {
            return;
        }
        let started = Instant::now();
        while started.elapsed() < REPLAY_BUDGET {
            let Some(claim) = self.spool.claim_oldest() else {
                if self.backoff.answered() {
                    log::info!("events: collector answering again; spool replayed");
                }
                return;
            };
            match self.post(&claim.lines) {
                Ok(()) => {
                    self.metrics
                        .events
                        .with_label_values(&["replayed"])
                        .inc_by(claim.count);
                    self.spool.done(claim);
                }
                Err(Failure::Permanent(e)) => {
                    log::error!(
                        "events: collector refused a spooled batch ({e}); kept in spool/rejected"
                    );
                    self.spool.reject(&claim.lines, claim.count);
                    self.spool.done(claim);
                }
                Err(Failure::Transient(e)) => {
                    self.spool.release(claim);
                    self.mark_down(&e);
                    return;
                }
            }
        }
    }
}

impl Sink for HttpSink {
    fn encode(&mut self, event: &Event, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match &mut self.rows {
            Some(rows) => rows.encode(event, out),
            None => serde_json::to_writer(out, event),
        }
    }

    fn deliver(&mut self, batch: &Batch) {
        // Order matters: while anything is spooled, new batches queue up behind it.
        if self.backoff.is_down() {
            self.spool(&batch.lines, batch.count);
            self.replay(Instant::now());
            return;
        }
        match self.post_with_retries(&batch.lines) {
            Ok(()) => self
                .metrics
                .events
                .with_label_values(&["sent"])
                .inc_by(batch.count),
            Err(Failure::Permanent(e)) => {
                log::error!(
                    "events: collector refused a batch of {} ({e}); kept in spool/rejected",
                    batch.count
                );
                self.spool.reject(&batch.lines, batch.count);
            }
            Err(Failure::Transient(e)) => {
                self.spool(&batch.lines, batch.count);
                self.mark_down(&e);
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        if self.backoff.is_down() {
            self.replay(now);
        }
    }

    fn close(&mut self) {}
}
