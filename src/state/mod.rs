//! Campaign state: what flowgate remembers of clicks beyond their events. Every click is kept
//! in a store (embedded SQLite by default) for `state.retention`; `unique` asks whether the
//! visitor clicked in the campaign (or flow) within a window, `cap` how many clicks a flow
//! served in its hour, day or lifetime.
//!
//! The request path never reads the store: a signed cookie answers `unique` for browsers that
//! keep cookies, an in-memory index (loaded from the store at start) for those that do not,
//! caps count in atomics, and the clicks go to the store through a bounded queue and a writer
//! thread. This state belongs to the process, not to a snapshot: reloads keep it.

mod caps;
mod cookie;
mod index;
mod keys;
mod lookup;
mod recent;
mod shared_live;
mod shared_store;
mod sqlite;
mod store;
mod view;
mod visit;
mod worker;

use std::net::IpAddr;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use http::{HeaderMap, HeaderValue};

use crate::config::StateConfig;
use crate::metrics::Metrics;
pub use caps::{CapCounter, Caps, Counted, Per};
pub use cookie::{VisitorCookie, NAME as COOKIE_NAME};
pub use keys::{Keys, Pseudonym};
pub use lookup::{POSTBACK_DEADLINE, VISITOR_DEADLINE};
pub use shared_store::RedisStore;
pub use sqlite::Sqlite;
pub use store::{CountDelta, Forget, Forgotten, SeenRow, Store, StoreError, StoredClick};
pub use view::{Assumed, AssumedClick, TestState, View};
pub use visit::Visit;
pub use worker::Click;

use index::SeenIndex;
use lookup::Readers;
use recent::Recent;
use shared_live::{Claim, SharedLive};
use worker::{Message, Writer};

/// Store connections kept for click lookups, beside the writer's.
const READERS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state: {}: {source}", dir.display())]
    Keys {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("state: {0}")]
    Store(#[from] StoreError),
    #[error("state: cannot start the writer: {0}")]
    Thread(std::io::Error),
    #[error("state.redis: {0}")]
    Redis(String),
}

/// The process's state: keys, the visitor index, cap counters, and the writer's queue.
pub struct State {
    keys: Arc<Keys>,
    index: Arc<SeenIndex>,
    caps: Arc<Caps>,
    tx: SyncSender<Message>,
    /// The shared store's request-path client, with `state.redis`.
    shared: Option<SharedLive>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// `flowgate_state_clicks_total{outcome="dropped"}`, looked up once.
    dropped: prometheus::IntCounter,
    /// `flowgate_state_errors_total`: a lookup, or a shared store's call, that failed or
    /// was late.
    errors: prometheus::IntCounter,
    /// Clicks served in the last seconds, which the writer may not have written yet.
    recent: Recent,
    readers: Arc<Readers>,
    /// `privacy.query_params`, for clicks found in memory.
    keep: Vec<String>,
    unique_window_ms: u64,
    /// `; Path=/; Max-Age=...; HttpOnly; SameSite=Lax`
    cookie_attrs: String,
}

/// A campaign's or flow's name for `unique`: a hash of its id (and the flow's name), never 0.
pub fn scope(campaign: &str, flow: Option<&str>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(campaign.as_bytes());
    if let Some(f) = flow {
        eat(b"\x1f");
        eat(f.as_bytes());
    }
    // splitmix64's finaliser: the cookie keeps the low 32 bits, which FNV mixes poorly.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    (h ^ (h >> 31)) | 1
}

impl State {
    /// Opens the keys and the store, loads the caps' counts and what the index knows, and
    /// starts the writer. Any failure stops the start: `unique` and `cap` would be wrong.
    pub fn open(
        cfg: &StateConfig,
        query_params: &[String],
        metrics: Arc<Metrics>,
    ) -> Result<Arc<State>, StateError> {
        let retention = cfg.retention.0;
        let (keys, mut store, shared): (Keys, Box<dyn Store>, _) = match &cfg.redis {
            Some(url) => {
                let redis = |e: StoreError| StateError::Redis(e.0);
                let mut store = RedisStore::open(&url.value, retention).map_err(redis)?;
                let keys = store.keys().map_err(redis)?;
                let live = SharedLive::connect(&url.value, cfg.deadline.0, retention)
                    .map_err(StateError::Redis)?;
                (keys, Box::new(store), Some(live))
            }
            None => {
                let keys = Keys::open(cfg.dir(), retention).map_err(|source| StateError::Keys {
                    dir: cfg.dir().to_path_buf(),
                    source,
                })?;
                (keys, Box::new(Sqlite::open(&cfg.path)?), None)
            }
        };
        let caps = Arc::new(Caps::default());
        caps.preload(store.caps()?);
        let index = Arc::new(SeenIndex::new(cfg.visitors.value));
        let since = crate::time::now_ms().saturating_sub(retention.as_millis() as u64);
        for row in store.seen_since(since, cfg.visitors.value)? {
            let secs = u32::try_from(row.seen_ms / 1000).unwrap_or(u32::MAX);
            index.mark(index::key(&row.visitor, row.scope), secs);
        }
        let at = match &cfg.redis {
            // The address only: a URL may carry a password.
            Some(_) => "redis".to_string(),
            None => cfg.path.display().to_string(),
        };
        log::info!(
            "state: {at} ({} visitors known, {} caps)",
            index.len(),
            caps.stored_len()
        );
        let mut readers: Vec<Box<dyn Store>> = Vec::new();
        for _ in 0..READERS {
            readers.push(match &cfg.redis {
                Some(url) => Box::new(RedisStore::open(&url.value, retention)?),
                None => Box::new(Sqlite::open(&cfg.path)?),
            });
        }
        let keys = Arc::new(keys);
        // One slot is kept for `Close`, so shutdown never waits on a full queue forever.
        let (tx, rx) = mpsc::sync_channel(cfg.queue.value + 1);
        let writer = Writer {
            store,
            keys: keys.clone(),
            index: index.clone(),
            caps: caps.clone(),
            metrics: metrics.clone(),
            keep: query_params.to_vec(),
            retention,
        };
        let thread = std::thread::Builder::new()
            .name("flowgate-state".into())
            .spawn(move || writer.run(rx))
            .map_err(StateError::Thread)?;
        // Browsers cap Max-Age at 400 days.
        let max_age = retention.as_secs().min(400 * 86_400);
        Ok(Arc::new(State {
            keys,
            index,
            caps,
            tx,
            shared,
            writer: Mutex::new(Some(thread)),
            dropped: metrics.state_clicks.with_label_values(&["dropped"]),
            errors: metrics.state_errors.clone(),
            recent: Recent::new(cfg.queue.value),
            readers: Arc::new(Readers::new(readers)),
            keep: query_params.to_vec(),
            unique_window_ms: cfg.unique_window.0.as_millis() as u64,
            cookie_attrs: format!("; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"),
        }))
    }

    /// The cap counters rules are compiled against.
    pub fn caps(&self) -> &Arc<Caps> {
        &self.caps
    }

    /// What is known of the visitor making this request: its cookie, if it is one flowgate
    /// signed; its pseudonym, worked out only if something asks.
    pub fn visit<'a>(&'a self, ip: IpAddr, ua: Option<&'a str>, headers: &HeaderMap) -> Visit<'a> {
        let cookie =
            cookie::find(headers).and_then(|v| VisitorCookie::decode(v, self.keys.cookie()));
        Visit::new(self, ip, ua.unwrap_or(""), cookie)
    }

    /// With a shared store, what it knows of a visitor without a cookie (by pseudonym), asked
    /// before the rules run; a browser with a cookie needs nothing (the cookie answers).
    pub async fn recall(&self, visit: &mut Visit<'_>) {
        let Some(shared) = &self.shared else { return };
        if visit.has_cookie() {
            return;
        }
        let visitor = keys::hex(visit.visitor());
        match shared.seen(&visitor).await {
            Some(seen) => visit.set_shared_seen(seen),
            None => self.errors.inc(),
        }
    }

    /// Whether the rules' decision stands. With a shared store, the cap it counts on is
    /// taken in the store, atomically with every other node; if it is full there, it is
    /// full here too and the rules must decide again (`false`). A store that does not answer
    /// in time leaves the cap to this process's own count.
    pub async fn confirm(&self, visit: &Visit<'_>) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        let Some((counter, limit)) = visit.take_claim() else {
            return true;
        };
        // Each refusal fills one cap for this process, so the rules soon run out of caps to
        // try; past a few, every cap is taken as full.
        if visit.retried() >= 8 {
            visit.close_caps();
            return false;
        }
        let window = counter.per.window(visit.now_ms, counter.offset_min);
        match shared.claim(&counter.key, window, limit).await {
            Some(Claim::Taken(total)) => {
                counter.confirmed(window, total);
                true
            }
            Some(Claim::Full(total)) => {
                counter.confirmed(window, total.max(limit));
                false
            }
            None => {
                self.errors.inc();
                counter.take(limit, visit.now_ms).is_ok()
            }
        }
    }

    /// Whether caps are counted in a shared store (then the rules only peek at them).
    pub(crate) fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// A click was decided: the visitor is now seen in its campaign and flow (cookie and
    /// index), and the click goes to the store's queue (dropped and counted when full).
    ///
    /// A visitor without a cookie has its pseudonym worked out here (`unique` needs it) and is
    /// marked in the index at once. One with a cookie needs none: the writer works it out
    /// off the request path, for the store and the index (which answers if the cookie is
    /// ever lost).
    pub fn clicked(&self, visit: &Visit, click: Click) -> Clicked {
        let scopes = click.scopes;
        let unique = (scopes[0] != 0).then(|| visit.unique(scopes[0], self.unique_window_ms));
        let secs = visit.secs();
        let visitor = visit.pseudonym();
        let mut set_cookie = None;
        if scopes[0] != 0 {
            let mut cookie = visit.cookie.unwrap_or_default();
            let mut changed = false;
            for s in scopes.into_iter().filter(|s| *s != 0) {
                if let Some(v) = &visitor {
                    self.index.mark(index::key(v, s), secs);
                }
                changed |= cookie.mark(s as u32, secs);
            }
            if changed {
                set_cookie = self.set_cookie(&cookie);
            }
        }
        let record = Arc::new(Click {
            visitor,
            ua: visitor
                .is_none()
                .then(|| Box::from(keys::clip_ua(visit.ua))),
            unique,
            ..click
        });
        self.recent.insert(record.clone());
        match self.tx.try_send(Message::Click(record)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
        Clicked { unique, set_cookie }
    }

    /// `Set-Cookie: fg_uv=...; Path=/; ...`, built in one buffer.
    fn set_cookie(&self, cookie: &VisitorCookie) -> Option<HeaderValue> {
        let len = COOKIE_NAME.len() + 1 + cookie.encoded_len() + self.cookie_attrs.len();
        let mut header = Vec::with_capacity(len);
        header.extend_from_slice(COOKIE_NAME.as_bytes());
        header.push(b'=');
        cookie.encode_into(self.keys.cookie(), &mut header);
        header.extend_from_slice(self.cookie_attrs.as_bytes());
        HeaderValue::from_maybe_shared(bytes::Bytes::from(header)).ok()
    }

    /// Writes out what is queued and what the caps counted, then stops the writer.
    pub fn close(&self) {
        let writer = self.writer.lock().map(|mut w| w.take()).unwrap_or(None);
        if let Some(w) = writer {
            if self.tx.send(Message::Close).is_ok() {
                let _ = w.join();
            }
        }
    }
}

/// What one click changed.
pub struct Clicked {
    /// No click of this visitor in the campaign within `state.unique_window` before this one
    /// (`None` without a campaign): the click event's `unique`.
    pub unique: Option<bool>,
    /// The visitor cookie to send, when it changed.
    pub set_cookie: Option<HeaderValue>,
}

#[cfg(test)]
mod tests;
