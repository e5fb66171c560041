//! Compiled conditions: every regex, CIDR set and country set built once per snapshot.

use http::{HeaderName, Method};
use regex::Regex;

use super::request::RequestFacts;
use crate::identity::{CidrSet, Visitor};

/// A set of country codes as a 26×26 bitset.
#[derive(Debug, Clone, Default)]
pub struct CountrySet([u64; 11]);

impl CountrySet {
    pub fn insert(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }

    pub fn contains(&self, index: usize) -> bool {
        self.0[index / 64] & (1 << (index % 64)) != 0
    }
}

#[derive(Debug)]
pub enum Presence {
    Present,
    Absent,
    Matches(Regex),
}

#[derive(Debug)]
pub enum PathMatch {
    Prefixes(Box<[String]>),
    Regex(Regex),
}

#[derive(Debug)]
pub enum Condition {
    All(Box<[Condition]>),
    Any(Box<[Condition]>),
    Not(Box<Condition>),
    Country(CountrySet),
    /// ISO 3166-2 codes (`US-CA`) or names, compared without case.
    Region(Box<[String]>),
    City(Box<[String]>),
    /// Sorted.
    Asn(Box<[u32]>),
    AsOrg(Regex),
    /// Bits of `Anonymous`.
    Anonymous(u8),
    Ip(CidrSet),
    /// Bit i: list i of the snapshot's intel.
    IpList(u64),
    Bot(bool),
    /// Bits of `Device::bit`.
    Device(u16),
    Os(u16),
    Browser(u16),
    /// Bits of `CrawlerVerdict::bit`.
    Crawler(u8),
    /// Bits of `signals::NAMES`; true when any of them fires.
    Signal(u8),
    Ua(Regex),
    /// `None`: no referer (or an empty one).
    Referer(Option<Regex>),
    Param(Box<[(String, Presence)]>),
    Header(Box<[(HeaderName, Presence)]>),
    /// Lowercase primary language subtags.
    Language(Box<[String]>),
    Method(Box<[Method]>),
    Path(PathMatch),
    Schedule(Schedule),
    /// True over the rate; shared by every `per: ip` condition of the same rate.
    Rate(std::sync::Arc<super::rate::RateLimiter>),
    /// The TLS client's fingerprint is listed (never on a plain listener).
    Ja4(super::ja4::Ja4List),
    /// No click of the visitor in `scope` (a campaign's or a flow's) within `window_ms`.
    Unique {
        window_ms: u64,
        scope: u64,
        flow: bool,
    },
}

/// Days of the week and a time-of-day window, in a fixed offset from UTC.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Bit 0 = Monday; 0 means every day.
    pub days: u8,
    /// `[from, to)` in minutes of the day; `from > to` wraps past midnight.
    pub window: Option<(u16, u16)>,
    pub offset_min: i32,
}

pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Schedule {
    /// `(weekday 0 = Monday, minute of the day)` at a Unix time, in this schedule's offset.
    pub fn local(&self, ms: u64) -> (usize, u16) {
        let minutes = (ms / 60_000) as i64 + i64::from(self.offset_min);
        // 1970-01-01 was a Thursday.
        let weekday = (minutes.div_euclid(1440) + 3).rem_euclid(7) as usize;
        (weekday, minutes.rem_euclid(1440) as u16)
    }

    pub fn holds(&self, ms: u64) -> bool {
        let (day, minute) = self.local(ms);
        let day_ok = self.days == 0 || self.days & (1 << day) != 0;
        let time_ok = match self.window {
            None => true,
            Some((from, to)) if from <= to => minute >= from && minute < to,
            Some((from, to)) => minute >= from || minute < to,
        };
        day_ok && time_ok
    }
}

impl Condition {
    pub fn eval(&self, v: &Visitor, r: &RequestFacts) -> bool {
        match self {
            Condition::All(cs) => cs.iter().all(|c| c.eval(v, r)),
            Condition::Any(cs) => cs.iter().any(|c| c.eval(v, r)),
            Condition::Not(c) => !c.eval(v, r),
            Condition::Country(set) => v.country.is_some_and(|c| set.contains(c.index())),
            Condition::Region(names) => v
                .region
                .as_deref()
                .is_some_and(|r| names.iter().any(|n| n.eq_ignore_ascii_case(r))),
            Condition::City(names) => v
                .city
                .as_deref()
                .is_some_and(|c| names.iter().any(|n| n.eq_ignore_ascii_case(c))),
            Condition::Asn(list) => v.asn.is_some_and(|a| list.binary_search(&a).is_ok()),
            Condition::AsOrg(re) => v.as_org.as_deref().is_some_and(|o| re.is_match(o)),
            Condition::Anonymous(mask) => v.anonymous.0 & mask != 0,
            Condition::Ip(set) => set.contains(v.ip),
            Condition::IpList(mask) => v.ip_lists & mask != 0,
            Condition::Bot(b) => v.bot == *b,
            Condition::Device(mask) => v.device.bit() & mask != 0,
            Condition::Os(mask) => v.os.bit() & mask != 0,
            Condition::Browser(mask) => v.browser.bit() & mask != 0,
            Condition::Crawler(mask) => v.crawler.bit() & mask != 0,
            Condition::Signal(mask) => super::signals::first(*mask, v, r).is_some(),
            Condition::Ua(re) => re.is_match(r.user_agent().unwrap_or("")),
            Condition::Referer(None) => r.referer().is_none_or(|s| s.trim().is_empty()),
            Condition::Referer(Some(re)) => r.referer().is_some_and(|s| re.is_match(s)),
            Condition::Param(checks) => checks.iter().all(|(name, p)| match p {
                Presence::Present => r.has_param(name),
                Presence::Absent => !r.has_param(name),
                Presence::Matches(re) => r.param(name).is_some_and(|v| re.is_match(&v)),
            }),
            Condition::Header(checks) => checks.iter().all(|(name, p)| {
                let value = r.headers.get(name);
                match p {
                    Presence::Present => value.is_some(),
                    Presence::Absent => value.is_none(),
                    Presence::Matches(re) => value
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| re.is_match(v)),
                }
            }),
            Condition::Language(tags) => r
                .primary_language()
                .is_some_and(|l| tags.iter().any(|t| t.eq_ignore_ascii_case(l))),
            Condition::Method(methods) => methods.contains(r.method),
            Condition::Ja4(list) => r.ja4.is_some_and(|j| list.matches(j)),
            Condition::Path(PathMatch::Prefixes(ps)) => ps.iter().any(|p| r.path.starts_with(&**p)),
            Condition::Path(PathMatch::Regex(re)) => re.is_match(r.path),
            Condition::Schedule(s) => s.holds(r.at.unwrap_or_else(crate::time::now_ms)),
            Condition::Unique {
                window_ms, scope, ..
            } => r.state.get().unique(*scope, *window_ms),
            Condition::Rate(limiter) => {
                let over = limiter.over(v.ip, std::time::Instant::now());
                if over {
                    r.rate_limited.set(true);
                }
                over
            }
        }
    }
}

impl Condition {
    /// Whether this condition, or one inside it, is `unique`: it needs the visitor's state.
    pub fn asks_state(&self) -> bool {
        match self {
            Condition::Unique { .. } => true,
            Condition::All(cs) | Condition::Any(cs) => cs.iter().any(Condition::asks_state),
            Condition::Not(c) => c.asks_state(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> u64 {
        crate::time::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn business_hours_in_an_offset_and_windows_past_midnight() {
        // Monday to Friday, 09:00-17:30 at UTC+2.
        let office = Schedule {
            days: 0b1_1111,
            window: Some((540, 1050)),
            offset_min: 120,
        };
        assert!(
            office.holds(at("2026-11-23T07:00:00Z")),
            "Monday 09:00 local"
        );
        assert!(
            !office.holds(at("2026-11-23T06:59:00Z")),
            "Monday 08:59 local"
        );
        assert!(
            !office.holds(at("2026-11-23T15:30:00Z")),
            "Monday 17:30 local is outside"
        );
        assert!(!office.holds(at("2026-11-22T10:00:00Z")), "Sunday");
        assert!(
            !office.holds(at("2026-11-20T23:30:00-01:00")),
            "Saturday 00:30 UTC is Saturday 02:30 local"
        );
        let night = Schedule {
            days: 0,
            window: Some((1320, 360)),
            offset_min: 0,
        };
        assert!(night.holds(at("2026-11-23T23:10:00Z")) && night.holds(at("2026-11-24T05:59:00Z")));
        assert!(!night.holds(at("2026-11-24T06:00:00Z")));
    }
}
