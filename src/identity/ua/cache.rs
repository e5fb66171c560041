//! A bounded, concurrent cache from user agent to what it says (`UaFacts`). Sharded so threads
//! rarely meet on a lock; a full shard is cleared whole (cheap, and the hot set refills at once).
//! One cache belongs to one snapshot's `Intel`, so a reload that changes the bot list or the
//! crawlers starts from an empty one and never serves what the old one concluded.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use super::UaClass;

const SHARDS: usize = 16;
/// Longer user agents are classified every time: they are rare, and often attacks.
const MAX_KEY: usize = 512;

/// What one user agent says, as the cache keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UaFacts {
    pub class: UaClass,
    /// For a user agent taken for a bot, the crawler it claims (index into
    /// `crawlers::CLAIMS`): kept here so a cached user agent pays only the range check.
    pub claim: Option<u8>,
}

type Shard = Mutex<HashMap<Box<str>, UaFacts, foldhash::fast::FixedState>>;

pub struct UaCache {
    shards: Vec<Shard>,
    per_shard: usize,
    hasher: foldhash::fast::FixedState,
}

impl UaCache {
    pub fn new(capacity: usize) -> UaCache {
        UaCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(Default::default())))
                .collect(),
            per_shard: (capacity / SHARDS).max(1),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    /// The facts of `ua`, from the cache or else from `compute` (then kept).
    pub fn facts(
        &self,
        ua: Option<&str>,
        compute: impl FnOnce(Option<&str>) -> UaFacts,
    ) -> UaFacts {
        let Some(key) = ua.filter(|u| !u.is_empty() && u.len() <= MAX_KEY) else {
            return compute(ua);
        };
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        if let Some(c) = shard.lock().ok().and_then(|m| m.get(key).copied()) {
            return c;
        }
        let facts = compute(Some(key));
        if let Ok(mut m) = shard.lock() {
            if m.len() >= self.per_shard {
                m.clear();
            }
            m.insert(Box::from(key), facts);
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::UaClassifier;

    #[test]
    fn answers_as_the_classifier_and_stays_bounded() {
        let c = UaClassifier::default();
        let cache = UaCache::new(64);
        let compute = |ua: Option<&str>| UaFacts {
            class: c.classify(ua),
            claim: ua.map(|u| u.len() as u8),
        };
        for i in 0..1000 {
            let ua = format!("Mozilla/5.0 (Windows NT 10.0) Chrome/{i}.0 Safari/537.36");
            assert_eq!(cache.facts(Some(&ua), compute), compute(Some(&ua)));
            assert_eq!(cache.facts(Some(&ua), compute), compute(Some(&ua)));
        }
        let held: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= 64, "{held}");
        assert!(cache.facts(None, compute).class.bot);
    }

    #[test]
    fn a_cached_user_agent_is_not_computed_again() {
        let cache = UaCache::new(64);
        let calls = std::cell::Cell::new(0);
        let compute = |_: Option<&str>| {
            calls.set(calls.get() + 1);
            UaFacts {
                class: UaClass::BOT,
                claim: Some(0),
            }
        };
        for _ in 0..3 {
            assert_eq!(cache.facts(Some("Googlebot/2.1"), compute).claim, Some(0));
        }
        assert_eq!(calls.get(), 1);
    }
}
