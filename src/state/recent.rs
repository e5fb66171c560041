//! The clicks this process served in the last seconds, by id. The writer batches (a click can
//! wait up to 200 ms, longer while the store refuses writes), so a lander's click-through or
//! a quick postback may come before its click is in the store: these answer from memory.
//! Bounded in count and age; the store answers for anything older.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::worker::Click;

const SHARDS: usize = 16;
/// A generation this old is retired at the next insert: by then the writer has written it
/// (unless the store is refusing writes, when the click is lost to lookups, not to the store).
const GENERATION_MS: u64 = 10_000;

type Map = HashMap<u128, Arc<Click>, foldhash::fast::FixedState>;

/// Two generations, as in the visitor index: inserts go to `new`; when it is full or older
/// than `GENERATION_MS` it becomes `old`, and the previous `old` is dropped.
#[derive(Default)]
struct Shard {
    new: Map,
    old: Map,
    /// When `new` began, Unix ms.
    since_ms: u64,
}

pub struct Recent {
    shards: Box<[Mutex<Shard>]>,
    per_generation: usize,
}

impl Recent {
    /// Remembers at most about `capacity` clicks.
    pub fn new(capacity: usize) -> Recent {
        Recent {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_generation: capacity.div_ceil(2 * SHARDS).max(1),
        }
    }

    fn shard(&self, id: u128) -> &Mutex<Shard> {
        // UUIDv7's low bits are random: they spread the shards as they are.
        &self.shards[(id as usize) % SHARDS]
    }

    pub fn insert(&self, click: Arc<Click>) {
        let id = click.click_id.as_u128();
        let now = click.ts_ms;
        let mut s = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
        if s.new.len() >= self.per_generation || now.saturating_sub(s.since_ms) >= GENERATION_MS {
            s.old = std::mem::take(&mut s.new);
            s.since_ms = now;
        }
        s.new.insert(id, click);
    }

    pub fn get(&self, id: u128) -> Option<Arc<Click>> {
        let s = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
        s.new.get(&id).or_else(|| s.old.get(&id)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click(ts_ms: u64) -> Arc<Click> {
        Arc::new(Click {
            click_id: uuid::Uuid::now_v7(),
            ts_ms,
            campaign: None,
            flow: None,
            route: "r".into(),
            query: None,
            visitor: None,
            ip: "192.0.2.1".parse().unwrap(),
            ua: None,
            unique: None,
            scopes: [0, 0],
            source: None,
            source_params: None,
        })
    }

    #[test]
    fn recent_clicks_are_found_and_old_or_surplus_ones_forgotten() {
        let r = Recent::new(64);
        let a = click(1_000);
        r.insert(a.clone());
        assert_eq!(r.get(a.click_id.as_u128()).map(|c| c.ts_ms), Some(1_000));
        assert!(r.get(uuid::Uuid::now_v7().as_u128()).is_none());
        // Two generations later it is gone, whatever the count.
        let id = a.click_id.as_u128();
        let shard_mates = || {
            std::iter::repeat_with(|| click(0))
                .filter(|c| c.click_id.as_u128() % SHARDS as u128 == id % SHARDS as u128)
        };
        for c in shard_mates().take(1) {
            r.insert(Arc::new(Click {
                ts_ms: 12_000,
                ..(*c).clone()
            }));
        }
        assert!(r.get(id).is_some(), "the old generation still answers");
        for c in shard_mates().take(1) {
            r.insert(Arc::new(Click {
                ts_ms: 24_000,
                ..(*c).clone()
            }));
        }
        assert!(r.get(id).is_none());
        // Never more than the capacity, give or take a generation per shard.
        for _ in 0..10_000 {
            r.insert(click(30_000));
        }
        let held: usize = (r.shards.iter())
            .map(|s| s.lock().map_or(0, |s| s.new.len() + s.old.len()))
            .sum();
        assert!(held <= 64 + 2 * SHARDS, "{held}");
    }
}
