//! Caps: how many clicks a flow has served in its current window (an hour, a day in a fixed
//! offset from UTC, or all time). One atomic per flow counts on the request path; the state
//! writer adds what it counted to the store and reads the total back, so a restart starts from
//! the stored count and two processes during an upgrade converge on one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The window a cap counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Hour,
    Day,
    Total,
}

impl Per {
    pub fn parse(s: &str) -> Option<Per> {
        match s {
            "hour" => Some(Per::Hour),
            "day" => Some(Per::Day),
            "total" => Some(Per::Total),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Per::Hour => "hour",
            Per::Day => "day",
            Per::Total => "total",
        }
    }

    /// The number of the window `ms` (Unix milliseconds) falls in, at `offset_min` east of
    /// UTC: a day starts at local midnight, an hour at the local full hour.
    pub fn window(self, ms: u64, offset_min: i32) -> u32 {
        let local = ms as i64 + i64::from(offset_min) * 60_000;
        let w = match self {
            Per::Hour => local.div_euclid(3_600_000),
            Per::Day => local.div_euclid(86_400_000),
            Per::Total => 0,
        };
        w.clamp(0, i64::from(u32::MAX)) as u32
    }
}

/// What a cap counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Served clicks, taken as the flow decides.
    Clicks,
    /// Conversions attributed to the flow through the click store, counted as postbacks
    /// come in.
    Conversions,
}

impl Counted {
    pub fn as_str(self) -> &'static str {
        match self {
            Counted::Clicks => "clicks",
            Counted::Conversions => "conversions",
        }
    }
}

fn pack(window: u32, count: u32) -> u64 {
    u64::from(window) << 32 | u64::from(count)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// One flow's count in its current window.
#[derive(Debug)]
pub struct CapCounter {
    /// The store's name for it: campaign, flow, what is counted, window and offset.
    pub key: String,
    pub per: Per,
    pub offset_min: i32,
    /// `window << 32 | count`: one atomic, so a new window and its first click are one step.
    now: AtomicU64,
    /// What the store holds, as far as this process knows (same packing).
    stored: AtomicU64,
}

impl CapCounter {
    fn new(key: String, per: Per, offset_min: i32, stored: Option<(u32, u32)>) -> CapCounter {
        let (w, c) = stored.unwrap_or((0, 0));
        CapCounter {
            key,
            per,
            offset_min,
            now: AtomicU64::new(pack(w, c)),
            stored: AtomicU64::new(pack(w, c)),
        }
    }

    /// Takes one click of `limit` at `ms`: `Ok(count after)`, or `Err(count)` when the cap is
    /// reached. Exact under concurrency: no two requests take the last click.
    pub fn take(&self, limit: u32, ms: u64) -> Result<u32, u32> {
        let w = self.per.window(ms, self.offset_min);
        let mut seen = 0;
        self.now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                let (vw, vc) = unpack(v);
                let c = if vw == w { vc } else { 0 };
                seen = c;
                (c < limit).then(|| pack(w, c + 1))
            })
            .map(|_| seen + 1)
            .map_err(|_| seen)
    }

    /// Counts one at `ms` whatever the limit (a conversion happened; the cap only decides
    /// what the flow serves next).
    pub fn add(&self, ms: u64) {
        let w = self.per.window(ms, self.offset_min);
        let _ = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                let (vw, vc) = unpack(v);
                Some(if vw == w {
                    pack(w, vc.saturating_add(1))
                } else {
                    pack(w, 1)
                })
            });
    }

    /// Clicks counted in the window `ms` falls in, without counting one.
    pub fn count(&self, ms: u64) -> u32 {
        let (vw, vc) = unpack(self.now.load(Ordering::Acquire));
        if vw == self.per.window(ms, self.offset_min) {
            vc
        } else {
            0
        }
    }

    /// `(window, count now, clicks the store has not been told of)`, when there are any.
    pub(crate) fn unsynced(&self) -> Option<(u32, u32, u32)> {
        let (w, c) = unpack(self.now.load(Ordering::Acquire));
        let (sw, sc) = unpack(self.stored.load(Ordering::Acquire));
        let delta = if sw == w { c.saturating_sub(sc) } else { c };
        (delta > 0).then_some((w, c, delta))
    }

    /// The store now holds `total` for `window`, which includes the `counted` this process
    /// had then and whatever another process added: the count moves up by the difference.
    pub(crate) fn synced(&self, window: u32, counted: u32, total: u32) {
        let extra = total.saturating_sub(counted);
        let _ = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                let (vw, vc) = unpack(v);
                (vw == window).then(|| pack(vw, vc.saturating_add(extra)))
            });
        self.stored.store(pack(window, total), Ordering::Release);
    }
}

impl CapCounter {
    /// A shared store holds `total` for `window` (this process's confirmed clicks and every
    /// other node's): the count here moves up to it. Packed `(window, count)` only grows, so
    /// answers arriving out of order never move it back.
    pub(crate) fn confirmed(&self, window: u32, total: u32) {
        let v = pack(window, total);
        self.now.fetch_max(v, Ordering::AcqRel);
        self.stored.fetch_max(v, Ordering::AcqRel);
    }
}

/// Every cap counter of the process, by key: rules compiled again after a reload get the
/// counters they had, so a reload never resets a cap.
#[derive(Debug, Default)]
pub struct Caps {
    counters: Mutex<HashMap<String, Arc<CapCounter>>>,
    /// The latest `(window, count)` per key, as loaded from the store at start.
    stored: Mutex<HashMap<String, (u32, u32)>>,
}

impl Caps {
    /// The store's name for a cap (`spring/fresh/clicks/day+180`).
    pub fn key(campaign: &str, flow: &str, what: &str, per: Per, offset_min: i32) -> String {
        format!("{campaign}/{flow}/{what}/{}{offset_min:+}", per.as_str())
    }

    /// The counter of `key`, created (from the stored count) the first time it is asked for.
    pub fn counter(&self, key: &str, per: Per, offset_min: i32) -> Arc<CapCounter> {
        let mut map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(key) {
            return c.clone();
        }
        let stored = (self.stored.lock().unwrap_or_else(|e| e.into_inner()))
            .get(key)
            .copied();
        let c = Arc::new(CapCounter::new(key.to_string(), per, offset_min, stored));
        map.insert(key.to_string(), c.clone());
        c
    }

    /// What the store held at start: `(key, window, count)` rows, the latest window of each.
    pub(crate) fn preload(&self, rows: Vec<(String, u32, u32)>) {
        let mut stored = self.stored.lock().unwrap_or_else(|e| e.into_inner());
        for (key, w, c) in rows {
            stored.insert(key, (w, c));
        }
    }

    pub(crate) fn stored_len(&self) -> usize {
        self.stored.lock().map_or(0, |s| s.len())
    }

    pub(crate) fn all(&self) -> Vec<Arc<CapCounter>> {
        let map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        map.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> u64 {
        crate::time::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn a_day_starts_at_local_midnight_of_the_caps_offset() {
        let plus3 = 180;
        // 20:59 UTC is 23:59 at +03:00; 21:00 UTC is the next local day.
        let before = Per::Day.window(at("2026-11-23T20:59:59Z"), plus3);
        let after = Per::Day.window(at("2026-11-23T21:00:00Z"), plus3);
        assert_eq!(after, before + 1);
        assert_eq!(Per::Day.window(at("2026-11-23T00:00:00Z"), plus3), before);
        // At UTC the same moments are one day.
        assert_eq!(
            Per::Day.window(at("2026-11-23T20:59:59Z"), 0),
            Per::Day.window(at("2026-11-23T21:00:00Z"), 0)
        );
        // A half-hour offset moves the hours too.
        let h = |s| Per::Hour.window(at(s), 330);
        assert_eq!(h("2026-11-23T10:29:59Z") + 1, h("2026-11-23T10:30:00Z"));
        assert_eq!(Per::Total.window(at("2026-11-23T10:30:00Z"), 0), 0);
        // Negative offsets before the epoch's first day never underflow.
        assert_eq!(Per::Day.window(0, -300), 0);
    }

    #[test]
    fn a_cap_takes_exactly_its_limit_per_window_then_starts_again() {
        let caps = Caps::default();
        let c = caps.counter("c/f/clicks/day+180", Per::Day, 180);
        let t = at("2026-11-23T20:00:00Z");
        let taken: Vec<_> = (0..5).map(|_| c.take(3, t)).collect();
        assert_eq!(taken, [Ok(1), Ok(2), Ok(3), Err(3), Err(3)]);
        assert_eq!(c.count(t), 3);
        // Local midnight at +03:00: a new day, a new count.
        let next = at("2026-11-23T21:00:00Z");
        assert_eq!(c.count(next), 0);
        assert_eq!(c.take(3, next), Ok(1));
        // The same key is the same counter (a reload keeps the count).
        assert_eq!(
            caps.counter("c/f/clicks/day+180", Per::Day, 180)
                .count(next),
            1
        );
        // Conversions count past any limit, and from 1 in a new window.
        c.add(next);
        assert_eq!(c.take(2, next), Err(2));
        c.add(at("2026-11-24T21:00:00Z"));
        assert_eq!(c.count(at("2026-11-24T21:00:00Z")), 1);
    }

    #[test]
    fn concurrent_takes_never_pass_the_limit() {
        let c = Arc::new(Caps::default().counter("k", Per::Total, 0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).filter(|_| c.take(100, 0).is_ok()).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(taken, 100);
    }

    #[test]
    fn the_store_count_is_the_start_and_another_process_adds_to_it() {
        let caps = Caps::default();
        let t = at("2026-11-23T10:00:00Z");
        let w = Per::Day.window(t, 0);
        caps.preload(vec![("k".into(), w, 7)]);
        let c = caps.counter("k", Per::Day, 0);
        assert_eq!(c.count(t), 7, "a restart starts from the stored count");
        assert_eq!(c.unsynced(), None);
        c.take(10, t).unwrap();
        let (uw, counted, delta) = c.unsynced().unwrap();
        assert_eq!((uw, counted, delta), (w, 8, 1));
        // The store answered 10: another process counted 2 meanwhile.
        c.synced(uw, counted, 10);
        assert_eq!(c.count(t), 10);
        assert_eq!(c.unsynced(), None);
        assert_eq!(c.take(10, t), Err(10));
    }

    #[test]
    fn a_shared_stores_totals_only_move_a_count_up_and_a_new_window_replaces_the_old() {
        let caps = Caps::default();
        let c = caps.counter("k", Per::Hour, 0);
        let t = at("2026-11-23T10:00:00Z");
        let w = Per::Hour.window(t, 0);
        c.confirmed(w, 5);
        assert_eq!((c.count(t), c.unsynced()), (5, None));
        // An older answer arriving late moves nothing back.
        c.confirmed(w, 3);
        assert_eq!(c.count(t), 5);
        // A click this process took alone (the store did not answer) is the store's to add.
        c.take(10, t).unwrap();
        assert_eq!(c.unsynced(), Some((w, 6, 1)));
        // The next hour's first total replaces the last hour's count.
        let next = at("2026-11-23T11:00:00Z");
        c.confirmed(w + 1, 1);
        assert_eq!((c.count(next), c.count(t)), (1, 0));
    }
}
