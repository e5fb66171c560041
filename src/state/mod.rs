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
mod sqlite;
mod store;
mod view;
mod worker;

use std::net::IpAddr;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use http::{HeaderMap, HeaderValue};

use crate::config::StateConfig;
use crate::metrics::Metrics;
pub use caps::{CapCounter, Caps, Counted, Per};
pub use cookie::{VisitorCookie, NAME as COOKIE_NAME};
pub use keys::{Keys, Pseudonym};
pub use lookup::{POSTBACK_DEADLINE, VISITOR_DEADLINE};
pub use sqlite::Sqlite;
pub use store::{CountDelta, Forget, Forgotten, SeenRow, Store, StoreError, StoredClick};
pub use view::{Assumed, AssumedClick, TestState, View};
pub use worker::Click;

use index::SeenIndex;
use lookup::Readers;
use recent::Recent;
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
}

/// The process's state: keys, the visitor index, cap counters, and the writer's queue.
pub struct State {
    keys: Arc<Keys>,
    index: Arc<SeenIndex>,
    caps: Arc<Caps>,
    tx: SyncSender<Message>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// `flowgate_state_clicks_total{outcome="dropped"}`, looked up once.
    dropped: prometheus::IntCounter,
    /// `flowgate_state_errors_total`.
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
        let keys = Keys::open(cfg.dir(), retention).map_err(|source| StateError::Keys {
            dir: cfg.dir().to_path_buf(),
            source,
        })?;
        let mut store = Sqlite::open(&cfg.path)?;
        let caps = Arc::new(Caps::default());
        caps.preload(store.caps()?);
        let index = Arc::new(SeenIndex::new(cfg.visitors.value));
        let since = crate::time::now_ms().saturating_sub(retention.as_millis() as u64);
        for row in store.seen_since(since, cfg.visitors.value)? {
            let secs = u32::try_from(row.seen_ms / 1000).unwrap_or(u32::MAX);
            index.mark(index::key(&row.visitor, row.scope), secs);
        }
        log::info!(
            "state: {} ({} visitors known, {} caps)",
            cfg.path.display(),
            index.len(),
            caps.stored_len()
        );
        let mut readers: Vec<Box<dyn Store>> = Vec::new();
        for _ in 0..READERS {
            readers.push(Box::new(Sqlite::open(&cfg.path)?));
        }
        let keys = Arc::new(keys);
        // One slot is kept for `Close`, so shutdown never waits on a full queue forever.
        let (tx, rx) = mpsc::sync_channel(cfg.queue.value + 1);
        let writer = Writer {
            store: Box::new(store),
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
        Visit {
            state: self,
            ip,
            ua: ua.unwrap_or(""),
            cookie,
            visitor: OnceLock::new(),
            now_ms: crate::time::now_ms(),
        }
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
        let visitor = visit.visitor.get().copied();
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
        let value = cookie.encode(self.keys.cookie());
        let mut header =
            Vec::with_capacity(COOKIE_NAME.len() + 1 + value.len() + self.cookie_attrs.len());
        header.extend_from_slice(COOKIE_NAME.as_bytes());
        header.push(b'=');
        header.extend_from_slice(value.as_bytes());
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

/// What one request knows of its visitor's past clicks.
pub struct Visit<'a> {
    state: &'a State,
    ip: IpAddr,
    ua: &'a str,
    cookie: Option<VisitorCookie>,
    visitor: OnceLock<Pseudonym>,
    pub now_ms: u64,
}

impl Visit<'_> {
    /// No click of this visitor in `scope` within `window_ms`: the cookie answers when the
    /// browser sent one flowgate signed, else the index does, by pseudonym.
    pub fn unique(&self, scope: u64, window_ms: u64) -> bool {
        let last = match &self.cookie {
            Some(c) => c.seen(scope as u32),
            None => (self.state.index).seen(index::key(self.visitor(), scope)),
        };
        last.is_none_or(|t| u64::from(self.secs().saturating_sub(t)) * 1000 >= window_ms)
    }

    pub fn has_cookie(&self) -> bool {
        self.cookie.is_some()
    }

    fn secs(&self) -> u32 {
        u32::try_from(self.now_ms / 1000).unwrap_or(u32::MAX)
    }

    fn visitor(&self) -> &Pseudonym {
        (self.visitor).get_or_init(|| self.state.keys.pseudonym(self.ip, self.ua))
    }
}

#[cfg(test)]
mod tests;
