//! The state writer: one thread that takes clicks from a bounded queue (requests never wait
//! on it), turns them into rows, and writes them to the store in batches, together with what
//! the caps counted; it purges what is older than `state.retention` now and then.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::caps::Caps;
use super::index::{self, SeenIndex};
use super::keys::{hex, Keys, Pseudonym};
use super::store::{CountDelta, Store, StoredClick};
use crate::metrics::Metrics;
use crate::url::{percent_decode, query_pairs};

/// What a request hands over about its click.
#[derive(Clone)]
pub struct Click {
    pub click_id: uuid::Uuid,
    pub ts_ms: u64,
    pub campaign: Option<Arc<str>>,
    pub flow: Option<Arc<str>>,
    pub route: Arc<str>,
    /// The request's query string, as sent; the writer keeps only `privacy.query_params`.
    pub query: Option<Box<str>>,
    /// Worked out on the request path when `unique` needed it; else the writer does, from
    /// `ip` and `ua`.
    pub visitor: Option<Pseudonym>,
    pub ip: IpAddr,
    /// The user agent, when the writer must work the pseudonym out.
    pub ua: Option<Box<str>>,
    pub unique: Option<bool>,
    /// Campaign scope, then flow scope (0: none).
    pub scopes: [u64; 2],
    /// The click's traffic source, and its params as a JSON object (hashed fields hashed).
    pub source: Option<Arc<str>>,
    pub source_params: Option<Box<str>>,
}

pub(super) enum Message {
    /// Shared with the recent clicks' map, which answers lookups until the batch is written.
    Click(Arc<Click>),
    /// Write out what is queued, then stop.
    Close,
}

/// A batch is written at this many clicks, or this long after its first, whichever is first.
const MAX_BATCH: usize = 1000;
const MAX_WAIT: Duration = Duration::from_millis(200);
/// How often caps' counts go to the store (and other processes' come back) without clicks.
const SYNC_EVERY: Duration = Duration::from_secs(1);
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How long the writer sleeps when the queue is empty (polled: a request never wakes it).
const POLL: Duration = Duration::from_millis(5);
/// Clicks kept for another try while the store refuses writes, before they are dropped.
const MAX_PENDING: usize = 20 * MAX_BATCH;

pub(super) struct Writer {
    pub store: Box<dyn Store>,
    pub keys: Arc<Keys>,
    pub index: Arc<SeenIndex>,
    pub caps: Arc<Caps>,
    pub metrics: Arc<Metrics>,
    /// `privacy.query_params`: names, a trailing `*` for a prefix.
    pub keep: Vec<String>,
    pub retention: Duration,
}

impl Writer {
    pub fn run(mut self, rx: Receiver<Message>) {
        let mut pending: Vec<StoredClick> = Vec::new();
        let mut first: Option<Instant> = None;
        let mut last_sync = Instant::now();
        let mut last_purge: Option<Instant> = None;
        loop {
            let closing = match rx.try_recv() {
                Ok(Message::Click(c)) => {
                    pending.push(self.row(&c));
                    first.get_or_insert_with(Instant::now);
                    false
                }
                Ok(Message::Close) | Err(TryRecvError::Disconnected) => true,
                Err(TryRecvError::Empty) => {
                    std::thread::sleep(POLL);
                    false
                }
            };
            let now = Instant::now();
            let due = pending.len() >= MAX_BATCH
                || first.is_some_and(|t| now.duration_since(t) >= MAX_WAIT)
                || now.duration_since(last_sync) >= SYNC_EVERY;
            if closing || due {
                self.flush(&mut pending);
                first = (!pending.is_empty()).then_some(now);
                last_sync = now;
            }
            if last_purge.is_none_or(|t| now.duration_since(t) >= PURGE_EVERY) {
                self.purge();
                last_purge = Some(now);
            }
            if closing {
                return;
            }
        }
    }

    /// The click's row; a visitor whose pseudonym the request did not need is marked in
    /// the index now.
    fn row(&self, c: &Click) -> StoredClick {
        let visitor = match c.visitor {
            Some(v) => v,
            None => {
                let v = self.keys.pseudonym(c.ip, c.ua.as_deref().unwrap_or(""));
                let secs = u32::try_from(c.ts_ms / 1000).unwrap_or(u32::MAX);
                for s in c.scopes.iter().filter(|s| **s != 0) {
                    self.index.mark(index::key(&v, *s), secs);
                }
                v
            }
        };
        stored(c, &visitor, &self.keys, &self.keep)
    }

    /// Writes the pending clicks and what the caps counted since the last write; the caps
    /// then hold the store's totals, which include other processes' clicks.
    fn flush(&mut self, pending: &mut Vec<StoredClick>) {
        let counters = self.caps.all();
        let unsynced: Vec<_> = counters
            .iter()
            .filter_map(|c| c.unsynced().map(|u| (c, u)))
            .collect();
        if pending.is_empty() && unsynced.is_empty() {
            return;
        }
        let deltas: Vec<CountDelta> = unsynced
            .iter()
            .map(|(c, (window, _, add))| CountDelta {
                key: c.key.clone(),
                window: *window,
                add: *add,
            })
            .collect();
        match self.store.write(pending, &deltas) {
            Ok(totals) => {
                for ((c, (window, counted, _)), total) in unsynced.iter().zip(totals) {
                    c.synced(*window, *counted, total);
                }
                let n = pending.len() as u64;
                self.metrics
                    .state_clicks
                    .with_label_values(&["written"])
                    .inc_by(n);
                pending.clear();
            }
            Err(e) => {
                self.metrics.state_errors.inc();
                log::error!("state: cannot write {} clicks: {e}", pending.len());
                if pending.len() > MAX_PENDING {
                    let n = pending.len() as u64;
                    self.metrics
                        .state_clicks
                        .with_label_values(&["failed"])
                        .inc_by(n);
                    pending.clear();
                }
            }
        }
    }

    fn purge(&mut self) {
        let cutoff = crate::time::now_ms().saturating_sub(self.retention.as_millis() as u64);
        match self.store.purge(cutoff) {
            Ok(0) => {}
            Ok(n) => log::info!("state: purged {n} clicks older than the retention"),
            Err(e) => {
                self.metrics.state_errors.inc();
                log::error!("state: cannot purge old clicks: {e}");
            }
        }
    }
}

/// The click as the store keeps it: `keep` (`privacy.query_params`) names the query
/// parameters kept.
pub(super) fn stored(c: &Click, visitor: &Pseudonym, keys: &Keys, keep: &[String]) -> StoredClick {
    let query: BTreeMap<&str, String> = (c.query.as_deref())
        .into_iter()
        .flat_map(query_pairs)
        .filter(|(k, _)| keeps(keep, k))
        .map(|(k, v)| (k, percent_decode(v).into_owned()))
        .collect();
    let mut id = [0u8; 36];
    StoredClick {
        click_id: c.click_id.hyphenated().encode_lower(&mut id).to_string(),
        ts_ms: c.ts_ms,
        campaign: c.campaign.as_deref().map(String::from),
        flow: c.flow.as_deref().map(String::from),
        route: c.route.to_string(),
        source: c.source.as_deref().map(String::from),
        query: serde_json::to_string(&query).unwrap_or_else(|_| "{}".into()),
        source_params: c.source_params.as_deref().unwrap_or("{}").to_string(),
        visitor: hex(visitor),
        ip_key: keys.ip_key(c.ip),
        unique: c.unique,
        scopes: c.scopes.iter().copied().filter(|s| *s != 0).collect(),
    }
}

fn keeps(keep: &[String], name: &str) -> bool {
    keep.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == p,
    })
}
