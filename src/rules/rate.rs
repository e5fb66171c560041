//! The `rate` condition: true once a visitor goes over `max` requests per `window` — a token
//! bucket per key (the visitor's address), refilled at `max` per `window`, the request itself
//! counted when the condition is evaluated. Buckets live in shards, each behind its own lock,
//! so no lock is shared by the whole request path, and a shard holds a bounded number of keys.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::yaml::OneOrMany;

/// `{ per: ip, max: 20, window: 1s }`; `per: [ip, campaign]` keeps a campaign's own count.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSpec {
    pub per: OneOrMany<String>,
    pub max: u32,
    pub window: crate::config::Timeout,
}

const SHARDS: usize = 16;
/// Keys remembered per shard: 16 × 4096 = 65,536 visitors per limiter, about 2 MB at most.
const KEYS_PER_SHARD: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct RateLimiter {
    max: f64,
    /// Tokens per second.
    refill: f64,
    shards: Box<[Mutex<HashMap<IpAddr, Bucket, foldhash::fast::RandomState>>]>,
    hasher: foldhash::fast::RandomState,
}

impl RateLimiter {
    pub fn new(max: u32, window: Duration) -> RateLimiter {
        let max = f64::from(max.max(1));
        RateLimiter {
            max,
            refill: max / window.as_secs_f64().max(0.001),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, ip: IpAddr) -> &Mutex<HashMap<IpAddr, Bucket, foldhash::fast::RandomState>> {
        &self.shards[(self.hasher.hash_one(ip) as usize) % SHARDS]
    }

    /// Counts one request of `ip`; true when it is over the rate.
    pub fn over(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = key(ip);
        let mut map = self.shard(ip).lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= KEYS_PER_SHARD && !map.contains_key(&ip) {
            // Full: one visitor is forgotten (and starts afresh if it returns). A sweep for
            // refilled buckets would cost a whole shard per request to a client rotating
            // addresses.
            if let Some(k) = map.keys().next().copied() {
                map.remove(&k);
            }
        }
        let b = map.entry(ip).or_insert(Bucket {
            tokens: self.max,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.refill).min(self.max);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            false
        } else {
            true
        }
    }

    /// Whether a request of `ip` now would be over the rate, without counting it (explain and
    /// rule tests must not spend a visitor's tokens).
    pub fn would_be_over(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = key(ip);
        let map = self.shard(ip).lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ip).is_some_and(|b| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            (b.tokens + elapsed * self.refill).min(self.max) < 1.0
        })
    }

    pub fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }
}

/// An IPv6 visitor is its /64: one subscriber is given a whole /64 and could otherwise
/// rotate addresses within it.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) if a.to_ipv4_mapped().is_none() => {
            let s = a.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        other => other,
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RateError {
    #[error("per: {0:?}: use ip, or [ip, campaign]")]
    Per(String),
    #[error("per must include ip")]
    NoIp,
    #[error("max must be at least 1")]
    ZeroMax,
    #[error("window must be at least 1ms")]
    Window,
}

/// Validates a spec: `(max, window, per campaign)`.
pub fn check(spec: &RateSpec) -> Result<(u32, Duration, bool), RateError> {
    let mut campaign = false;
    let mut ip = false;
    for p in &spec.per.0 {
        match p.as_str() {
            "ip" => ip = true,
            "campaign" => campaign = true,
            other => return Err(RateError::Per(other.to_string())),
        }
    }
    if !ip {
        return Err(RateError::NoIp);
    }
    if spec.max == 0 {
        return Err(RateError::ZeroMax);
    }
    if spec.window.0 < Duration::from_millis(1) {
        return Err(RateError::Window);
    }
    Ok((spec.max, spec.window.0, campaign))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visitor_over_the_rate_is_limited_and_refills_with_time() {
        let r = RateLimiter::new(3, Duration::from_secs(1));
        let (a, b): (IpAddr, IpAddr) = (
            "203.0.113.1".parse().unwrap(),
            "203.0.113.2".parse().unwrap(),
        );
        let t0 = Instant::now();
        let first: Vec<bool> = (0..5).map(|_| r.over(a, t0)).collect();
        assert_eq!(
            first,
            [false, false, false, true, true],
            "3 per second, the 4th is over"
        );
        assert!(!r.over(b, t0), "another visitor has its own bucket");
        assert!(
            !r.over(a, t0 + Duration::from_millis(400)),
            "a third of a second: one token"
        );
        assert!(r.over(a, t0 + Duration::from_millis(450)));
        let later = t0 + Duration::from_secs(5);
        assert!(
            (0..3).all(|_| !r.over(a, later)),
            "refilled to max, not beyond"
        );
        assert!(r.over(a, later));
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(!r.over(v6("2001:db8::1"), t0));
        assert!(!r.over(v6("2001:db8::2"), t0) && !r.over(v6("2001:db8::3"), t0));
        assert!(r.over(v6("2001:db8::ffff"), t0), "one /64 is one visitor");
    }

    #[test]
    fn the_number_of_visitors_remembered_is_bounded() {
        let r = RateLimiter::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..200_000u32 {
            r.over(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(r.keys() <= SHARDS * KEYS_PER_SHARD, "{}", r.keys());
    }
}
