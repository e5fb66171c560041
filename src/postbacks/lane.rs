//! One source's line of postbacks: a spool of its own (a job is on disk before it is sent,
//! and leaves it only once the source answered 2xx or refused it for good), and a backoff of
//! its own, so a source that is down holds up none of the others.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Ctx, Job};
use crate::events::deliver::{self, Backoff, Failure};
use crate::events::spool::{Spool, SpoolMeters};
use crate::rules::sources::{PostbackMethod, Rendered};

/// How long one pass may spend on one source, so the others get their turn.
const BUDGET: Duration = Duration::from_millis(500);

pub(super) struct Lane {
    source: String,
    spool: Spool,
    backoff: Backoff,
    /// Jobs whose `retrying` outcome was told: once per job, not once per attempt.
    told: HashSet<String>,
}

impl Lane {
    pub fn open(dir: &Path, source: &str, max_bytes: u64, ctx: &Ctx) -> std::io::Result<Lane> {
        let meters = SpoolMeters {
            dropped: Some(
                ctx.metrics
                    .postbacks
                    .with_label_values(&[source, "dropped"]),
            ),
            ..SpoolMeters::default()
        };
        let spool = Spool::open(&dir.join(source), max_bytes, meters)?;
        let mut lane = Lane {
            source: source.to_string(),
            spool,
            backoff: Backoff::default(),
            told: HashSet::new(),
        };
        // What an earlier run left is sent before anything new.
        if !lane.spool.is_empty() {
            lane.backoff.retry_now();
        }
        Ok(lane)
    }

    /// On disk first: from here on the job survives a restart.
    pub fn push(&mut self, job: &Job, ctx: &Ctx) {
        let mut line = serde_json::to_vec(job).unwrap_or_default();
        line.push(b'\n');
        if let Err(e) = self.spool.push(&line, 1) {
            log::error!("postbacks: {}: cannot spool a conversion: {e}", self.source);
            ctx.tell(job, "dropped", Some(format!("spool: {e}")));
        }
        if !self.backoff.is_down() {
            self.backoff.retry_now();
        }
    }

    /// Sends what is spooled, oldest first, until the budget is spent, the spool is empty
    /// or the source fails (then it waits out its backoff).
    pub fn pump(&mut self, now: Instant, ctx: &Ctx) {
        if !self.backoff.is_down() || self.backoff.waiting(now) {
            return;
        }
        let started = Instant::now();
        while started.elapsed() < BUDGET {
            let Some(claim) = self.spool.claim_oldest() else {
                if self.backoff.answered() && !self.told.is_empty() {
                    log::info!("postbacks: {} answering again", self.source);
                }
                self.told.clear();
                return;
            };
            let Ok(job) = serde_json::from_slice::<Job>(claim.lines.trim_ascii_end()) else {
                log::error!(
                    "postbacks: {}: an unreadable spooled job; set aside",
                    self.source
                );
                self.spool.reject(&claim.lines, 1);
                self.spool.done(claim);
                continue;
            };
            let Some(request) = (ctx.render)(&job.source, &job.facts) else {
                // The rules no longer forward this source's conversions.
                ctx.tell(
                    &job,
                    "dropped",
                    Some("the source has no postback now".into()),
                );
                self.spool.done(claim);
                continue;
            };
            let result = self
                .backoff
                .with_retries(ctx.retries, || send(&ctx.agent, &request, &job.id));
            match result {
                Ok(()) => {
                    self.told.remove(&job.id);
                    self.spool.done(claim);
                    ctx.tell(&job, "delivered", None);
                }
                Err(Failure::Permanent(e)) => {
                    log::warn!(
                        "postbacks: {} refused a conversion ({e}); set aside",
                        self.source
                    );
                    self.told.remove(&job.id);
                    self.spool.reject(&claim.lines, 1);
                    self.spool.done(claim);
                    ctx.tell(&job, "rejected", Some(e));
                }
                Err(Failure::Transient(e)) => {
                    self.spool.release(claim);
                    if self.backoff.failed() {
                        log::warn!(
                            "postbacks: {} unavailable ({e}); kept until it answers",
                            self.source
                        );
                    }
                    if self.told.insert(job.id.clone()) {
                        ctx.tell(&job, "retrying", Some(e));
                    }
                    return;
                }
            }
        }
    }
}

/// One attempt, with the conversion's id as the idempotency key.
fn send(agent: &ureq::Agent, r: &Rendered, id: &str) -> Result<(), Failure> {
    let has = |name: &str| r.headers.iter().any(|(k, _)| k.as_str() == name);
    let result = match r.method {
        PostbackMethod::Get => {
            let mut req = agent.get(&r.url).header("idempotency-key", id);
            for (k, v) in &r.headers {
                req = req.header(k, v);
            }
            req.call()
        }
        PostbackMethod::Post => {
            let mut req = agent.post(&r.url).header("idempotency-key", id);
            if !has("content-type") && r.body.is_some() {
                req = req.header("content-type", "application/json");
            }
            for (k, v) in &r.headers {
                req = req.header(k, v);
            }
            req.send(r.body.as_deref().unwrap_or_default())
        }
    };
    deliver::judge(result)
}
