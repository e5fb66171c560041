//! What one request knows of its visitor: its cookie, its pseudonym (worked out only if
//! something asks), and, with a shared store, what the store knew of it and the cap click
//! the rules' decision counts on.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::{index, CapCounter, Pseudonym, State, VisitorCookie};

/// What one request knows of its visitor's past clicks.
pub struct Visit<'a> {
    state: &'a State,
    ip: IpAddr,
    pub(super) ua: &'a str,
    pub(super) cookie: Option<VisitorCookie>,
    visitor: OnceLock<Pseudonym>,
    pub now_ms: u64,
    /// The shared store's last clicks of this pseudonym: `(scope, unix seconds)`.
    shared_seen: Vec<(u64, u32)>,
    /// The cap a shared store must still confirm: the one whose flow decided.
    claim: Mutex<Option<(Arc<CapCounter>, u32)>>,
    /// Every cap answers full: the rules asked too often for this request.
    caps_closed: AtomicBool,
    /// How often the rules decided again after a shared store refused a cap.
    retries: AtomicU8,
}

impl<'a> Visit<'a> {
    pub(super) fn new(
        state: &'a State,
        ip: IpAddr,
        ua: &'a str,
        cookie: Option<VisitorCookie>,
    ) -> Visit<'a> {
        Visit {
            state,
            ip,
            ua,
            cookie,
            visitor: OnceLock::new(),
            now_ms: crate::time::now_ms(),
            shared_seen: Vec::new(),
            claim: Mutex::new(None),
            caps_closed: AtomicBool::new(false),
            retries: AtomicU8::new(0),
        }
    }

    /// No click of this visitor in `scope` within `window_ms`: the cookie answers when the
    /// browser sent one flowgate signed, else the index does, by pseudonym.
    pub fn unique(&self, scope: u64, window_ms: u64) -> bool {
        let last = match &self.cookie {
            Some(c) => c.seen(scope as u32),
            None => {
                let here = (self.state.index).seen(index::key(self.visitor(), scope));
                let shared = (self.shared_seen.iter())
                    .find(|(s, _)| *s == scope)
                    .map(|(_, t)| *t);
                here.max(shared)
            }
        };
        last.is_none_or(|t| u64::from(self.secs().saturating_sub(t)) * 1000 >= window_ms)
    }

    pub fn has_cookie(&self) -> bool {
        self.cookie.is_some()
    }

    /// Takes one click of a live cap. With a shared store the count here only says whether
    /// there may be room; the store takes the click once the rules decided (`State::settle`).
    pub fn take_cap(&self, counter: &Arc<CapCounter>, limit: u32) -> Result<u32, u32> {
        if self.caps_closed.load(Ordering::Relaxed) {
            return Err(counter.count(self.now_ms));
        }
        if !self.state.is_shared() {
            return counter.take(limit, self.now_ms);
        }
        let count = counter.count(self.now_ms);
        if count >= limit {
            return Err(count);
        }
        let mut claim = self.claim.lock().unwrap_or_else(|e| e.into_inner());
        *claim = Some((counter.clone(), limit));
        Ok(count + 1)
    }

    pub(super) fn take_claim(&self) -> Option<(Arc<CapCounter>, u32)> {
        (self.claim.lock().unwrap_or_else(|e| e.into_inner())).take()
    }

    /// Counts one more decision for this request; how many there were before.
    pub(super) fn retried(&self) -> u8 {
        self.retries.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn close_caps(&self) {
        self.caps_closed.store(true, Ordering::Relaxed);
    }

    pub(super) fn set_shared_seen(&mut self, seen: Vec<(u64, u64)>) {
        self.shared_seen = (seen.into_iter())
            .map(|(s, ms)| (s, u32::try_from(ms / 1000).unwrap_or(u32::MAX)))
            .collect();
    }

    pub(super) fn pseudonym(&self) -> Option<Pseudonym> {
        self.visitor.get().copied()
    }

    pub(super) fn secs(&self) -> u32 {
        u32::try_from(self.now_ms / 1000).unwrap_or(u32::MAX)
    }

    pub(super) fn visitor(&self) -> &Pseudonym {
        (self.visitor).get_or_init(|| self.state.keys.pseudonym(self.ip, self.ua))
    }
}
