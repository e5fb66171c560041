//! The HTTP sink: POST NDJSON batches to a collector — ClickHouse's HTTP interface
//! (`INSERT ... FORMAT JSONEachRow`), Vector's `http_server`, anything that takes NDJSON.
//! Fast failures are retried with backoff and jitter; then the batch goes to the spool and
//! the sink stays "down", spooling new batches in order, until a replay gets through.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clickhouse::{insert_url, RowEncoder};
use super::spool::Spool;
use super::{Batch, Event, Sink};
use crate::config::HttpSinkConfig;
use crate::metrics::Metrics;
use crate::url::encode_url;

/// Longest pause between replay attempts while the collector is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
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
    /// While set, new batches go straight to the spool and replay waits until then.
    down_until: Option<Instant>,
    backoff: Duration,
    jitter: u64,
}

enum Failure {
    /// Worth trying again: network errors, timeouts, 5xx, 408, 429.
    Transient(String),
    /// The collector refuses this batch (other 4xx): retrying would never help.
    Permanent(String),
}

impl HttpSink {
    pub fn open(cfg: &HttpSinkConfig, metrics: Arc<Metrics>) -> std::io::Result<HttpSink> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout.0))
            .timeout_connect(Some(cfg.timeout.0.min(Duration::from_secs(2))))
            .http_status_as_error(false)
            .build()
            .into();
        let headers = cfg.resolved_headers().to_vec();
        let spool = Spool::open(&cfg.spool_dir, cfg.spool_max_bytes.0, metrics.clone())?;
        let mut seed = [0u8; 8];
        let _ = getrandom::getrandom(&mut seed);
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
            down_until: None,
            backoff: Duration::from_millis(500),
            jitter: u64::from_le_bytes(seed) | 1,
        };
        // Whatever an earlier run spooled is replayed before anything new.
        if !sink.spool.is_empty() {
            sink.down_until = Some(Instant::now());
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
        match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match status {
                    200..=299 => Ok(()),
                    408 | 429 | 500..=599 => Err(Failure::Transient(format!("HTTP {status}"))),
                    _ => {
                        let body = resp.into_body().read_to_string().unwrap_or_default();
                        Err(Failure::Permanent(format!(
                            "HTTP {status}: {}",
                            body.trim()
                        )))
                    }
                }
            }
            Err(e) => Err(Failure::Transient(e.to_string())),
        }
    }

    /// A few quick attempts; a collector that is down is not waited for here.
    fn post_with_retries(&mut self, lines: &[u8]) -> Result<(), Failure> {
        let mut pause = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            match self.post(lines) {
                Err(Failure::Transient(e))
                    if attempt < self.retries && started.elapsed() < Duration::from_millis(500) =>
                {
                    attempt += 1;
                    std::thread::sleep(self.jittered(pause));
                    pause *= 2;
                    log::debug!("events: attempt {attempt} failed ({e}), retrying");
                }
                other => return other,
            }
        }
    }

    /// `d` ± 25%, so many flowgates do not retry in step.
    fn jittered(&mut self, d: Duration) -> Duration {
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let spread = d.as_millis() as u64 / 2;
        let offset = if spread == 0 { 0 } else { self.jitter % spread };
        d - d / 4 + Duration::from_millis(offset)
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
        if self.down_until.is_none() {
            log::warn!("events: collector unavailable ({why}); spooling until it answers");
        }
        let wait = self.jittered(self.backoff);
        self.down_until = Some(Instant::now() + wait);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn replay(&mut self, now: Instant) {
        if self.down_until.is_some_and(|t| now < t) {
            return;
        }
        let started = Instant::now();
        while started.elapsed() < REPLAY_BUDGET {
            let Some(claim) = self.spool.claim_oldest() else {
                if self.down_until.take().is_some() {
                    log::info!("events: collector answering again; spool replayed");
                }
                self.backoff = Duration::from_millis(500);
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
        if self.down_until.is_some() {
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
        if self.down_until.is_some() {
            self.replay(now);
        }
    }

    fn close(&mut self) {}
}
