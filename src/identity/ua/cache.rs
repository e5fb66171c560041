//! A bounded, concurrent cache from user agent to classification. Sharded so threads rarely
//! meet on a lock; a full shard is cleared whole (cheap, and the hot set refills at once).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use super::{UaClass, UaClassifier};

const SHARDS: usize = 16;
/// Longer user agents are classified every time: they are rare, and often attacks.
const MAX_KEY: usize = 512;

pub struct UaCache {
    shards: Vec<Mutex<HashMap<Box<str>, UaClass, foldhash::fast::FixedState>>>,
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

    pub fn classify(&self, classifier: &UaClassifier, ua: Option<&str>) -> UaClass {
        let Some(key) = ua.filter(|u| !u.is_empty() && u.len() <= MAX_KEY) else {
            return classifier.classify(ua);
        };
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        if let Some(c) = shard.lock().ok().and_then(|m| m.get(key).copied()) {
            return c;
        }
        let class = classifier.classify(Some(key));
        if let Ok(mut m) = shard.lock() {
            if m.len() >= self.per_shard {
                m.clear();
            }
            m.insert(Box::from(key), class);
        }
        class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_the_classifier_and_stays_bounded() {
        let c = UaClassifier::default();
        let cache = UaCache::new(64);
        for i in 0..1000 {
            let ua = format!("Mozilla/5.0 (Windows NT 10.0) Chrome/{i}.0 Safari/537.36");
            assert_eq!(cache.classify(&c, Some(&ua)), c.classify(Some(&ua)));
            assert_eq!(cache.classify(&c, Some(&ua)), c.classify(Some(&ua)));
        }
        let held: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= 64, "{held}");
        assert!(cache.classify(&c, None).bot);
    }
}
