//! What the request path knows of visitors without a cookie: when each pseudonym last clicked
//! in each campaign (and flow). Loaded from the store at start, kept in memory and bounded,
//! so `unique` never waits on a database read.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use super::keys::Pseudonym;

const SHARDS: usize = 16;

type Map = HashMap<u64, u32, foldhash::fast::FixedState>;

/// Two generations: entries go to `new`; when it holds half the shard's share, it becomes
/// `old` and the previous `old` is forgotten. A lookup asks both. What is forgotten is what
/// was not seen for longest, at no cost per click.
#[derive(Default)]
struct Shard {
    new: Map,
    old: Map,
}

pub struct SeenIndex {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: foldhash::fast::RandomState,
}

/// The index's key of a pseudonym in a scope.
pub fn key(visitor: &Pseudonym, scope: u64) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&visitor[..8]);
    // The pseudonym is already a keyed hash; the scope only has to move it.
    u64::from_le_bytes(head) ^ scope.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl SeenIndex {
    /// Remembers at most about `capacity` visitor × scope entries.
    pub fn new(capacity: usize) -> SeenIndex {
        SeenIndex {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, key: u64) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// When `key` last clicked (unix seconds).
    pub fn seen(&self, key: u64) -> Option<u32> {
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        shard.new.get(&key).or_else(|| shard.old.get(&key)).copied()
    }

    /// Records a click of `key` at `secs` (a later one never moves it back).
    pub fn mark(&self, key: u64, secs: u32) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let before = shard.old.get(&key).copied().unwrap_or(0);
        if shard.new.len() >= self.per_shard.div_ceil(2) && !shard.new.contains_key(&key) {
            // Full: the older generation is forgotten (those visitors look new again if they
            // come back without a cookie).
            shard.old = std::mem::take(&mut shard.new);
        }
        let e = shard.new.entry(key).or_insert(secs);
        *e = (*e).max(secs).max(before);
    }

    pub(super) fn len(&self) -> usize {
        (self.shards.iter())
            .map(|s| s.lock().map_or(0, |s| s.new.len() + s.old.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_remembers_the_latest_click_and_stays_bounded() {
        let idx = SeenIndex::new(1000);
        let k = key(&[1; 16], 42);
        assert_ne!(k, key(&[1; 16], 43));
        assert_eq!(idx.seen(k), None);
        idx.mark(k, 100);
        idx.mark(k, 90);
        assert_eq!(idx.seen(k), Some(100));
        for i in 0..50_000u64 {
            idx.mark(i, 1);
        }
        assert!(idx.len() <= 1000 + SHARDS, "{}", idx.len());
    }
}
