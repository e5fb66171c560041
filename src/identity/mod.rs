//! Who the visitor is: address, geography, network, list membership and user agent class.
//! Everything here is compiled at snapshot build and only read per request.

pub mod cidr;
pub mod client_ip;
pub mod config;
pub mod countries;
pub mod crawlers;
pub mod geo;
pub mod ja4;
mod mmdb_check;
pub mod ua;
pub mod update;

use std::net::IpAddr;

use crate::problem::Problems;
use crate::yaml::At;

pub use cidr::{BadCidr, Cidr, CidrSet};
pub use client_ip::{client_ip, ClientIpHeader};
pub use config::{BotsConfig, DataSource, IntelConfig};
pub use crawlers::{CrawlerVerdict, Crawlers};
pub use geo::{Anonymous, CountryCode, Mmdb, MmdbError};
pub use ja4::Ja4;
pub use ua::{Browser, ClientHints, Device, Os, UaCache, UaClass, UaClassifier, UaFacts};

/// How a missing data file comes: `flowgate intel update` fetches what has a url.
fn fetch_hint(src: &DataSource) -> &'static str {
    if src.url.is_some() {
        "; `flowgate intel update` fetches it"
    } else {
        "; give it a url and `flowgate intel update` fetches it"
    }
}

/// What identity's constructors refuse, in the words an operator's problem list uses.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is not a valid header name")]
    HeaderName(String),
    #[error("bad regex {pattern:?}: {source}")]
    Pattern {
        /// The config key of the list it is in: `intel.bots.add` or `intel.bots.allow`.
        key: &'static str,
        pattern: String,
        source: regex::Error,
    },
    /// The patterns together exceed what one matcher may hold.
    #[error("{0}")]
    PatternSet(regex::Error),
}

/// The most IP lists a config may name (membership is a 64-bit mask).
pub const MAX_LISTS: usize = 64;

/// Facts about one visitor, computed once per request.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub ip: IpAddr,
    pub country: Option<CountryCode>,
    pub region: Option<Box<str>>,
    pub city: Option<Box<str>>,
    pub asn: Option<u32>,
    pub as_org: Option<Box<str>>,
    /// Bit i set: the address is in list i of the snapshot's `Intel::lists`.
    pub ip_lists: u64,
    pub anonymous: Anonymous,
    pub bot: bool,
    pub device: Device,
    pub os: Os,
    pub browser: Browser,
    /// Asked only of user agents taken for bots: search-engine crawlers are bots.
    pub crawler: CrawlerVerdict,
}

/// A named list of networks from `intel.lists`.
pub struct IpList {
    pub name: String,
    pub set: CidrSet,
    /// Membership also sets this anonymity flag (a Tor or VPN list).
    pub anonymous: Anonymous,
    /// Lines skipped with `skip_bad_lines`.
    pub skipped: usize,
    /// When its file was last modified (unix seconds), for the age of the data.
    pub modified: Option<u64>,
}

/// All visitor intelligence of one snapshot.
#[derive(Default)]
pub struct Intel {
    pub country: Option<Mmdb>,
    pub city: Option<Mmdb>,
    pub asn: Option<Mmdb>,
    pub anonymous: Option<Mmdb>,
    pub lists: Vec<IpList>,
    pub ua: UaClassifier,
    ua_cache: Option<UaCache>,
    pub crawlers: Crawlers,
}

impl Intel {
    /// Loads every configured database and list; each unreadable or corrupt file is a problem.
    pub fn load(cfg: &IntelConfig, problems: &mut Problems) -> Intel {
        let open = |key: &str, s: &Option<At<DataSource>>, problems: &mut Problems| {
            let s = s.as_ref()?;
            Mmdb::load(&s.file)
                .map_err(|e| {
                    let hint = match &e {
                        MmdbError::Unreadable { .. } => fetch_hint(s),
                        MmdbError::Invalid { .. } => "",
                    };
                    cfg.push(problems, key, s, format!("{e}{hint}"));
                })
                .ok()
        };
        let lists = cfg
            .lists
            .iter()
            // A list that fails to load keeps its name (and index), so rules naming it are
            // checked against the config rather than reported twice.
            .map(|(name, src)| {
                let key = format!("intel.lists.{name}");
                let (set, skipped) = match std::fs::metadata(&src.file) {
                    Err(e) => {
                        let msg = format!(
                            "cannot read {}: {}{}",
                            src.file.display(),
                            crate::problem::io_reason(&e),
                            fetch_hint(src)
                        );
                        cfg.push(problems, &key, src, msg);
                        Default::default()
                    }
                    Ok(_) => CidrSet::load_with(&src.file, src.skip_bad_lines, problems)
                        .unwrap_or_default(),
                };
                let anonymous = src
                    .anonymous
                    .as_deref()
                    .map_or(Anonymous::default(), Anonymous::from_name);
                let modified = std::fs::metadata(&src.file)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs());
                IpList {
                    name: name.clone(),
                    set,
                    anonymous,
                    skipped,
                    modified,
                }
            })
            .collect();
        let ua = cfg.classifier(problems);
        let mut crawlers = Crawlers::default();
        for (name, src) in &cfg.crawlers {
            // An unknown name is the config's problem, reported by its validation.
            let Some(index) = Crawlers::index(name) else {
                continue;
            };
            if let Err(e) = std::fs::metadata(&src.file) {
                let reason = crate::problem::io_reason(&e);
                let msg = format!(
                    "cannot read {}: {reason}{}",
                    src.file.display(),
                    fetch_hint(src)
                );
                cfg.push(problems, &format!("intel.crawlers.{name}"), src, msg);
            } else if let Some(set) = crawlers::load_ranges(&src.file, problems) {
                crawlers.set_ranges(index, set);
            }
        }
        Intel {
            country: open("intel.country", &cfg.country, problems),
            city: open("intel.city", &cfg.city, problems),
            asn: open("intel.asn", &cfg.asn, problems),
            anonymous: open("intel.anonymous", &cfg.anonymous, problems),
            lists,
            ua,
            ua_cache: (cfg.ua_cache > 0).then(|| UaCache::new(cfg.ua_cache)),
            crawlers,
        }
    }

    pub fn list_index(&self, name: &str) -> Option<usize> {
        self.lists.iter().position(|l| l.name == name)
    }

    /// Names of the lists in a membership mask.
    pub fn list_names(&self, mask: u64) -> impl Iterator<Item = &str> {
        self.lists
            .iter()
            .enumerate()
            .filter(move |(i, _)| mask & (1 << i) != 0)
            .map(|(_, l)| l.name.as_str())
    }

    /// What the user agent says, through the cache when there is one.
    pub fn classify_ua(&self, ua: Option<&str>) -> UaClass {
        self.ua_facts(ua).class
    }

    /// The user agent's class and, for a bot, the crawler it claims: both cached, so a
    /// known user agent costs one lookup and its address only the range check.
    pub fn ua_facts(&self, ua: Option<&str>) -> UaFacts {
        let compute = |ua: Option<&str>| {
            let class = self.ua.classify(ua);
            let claim = ua
                .filter(|_| class.bot)
                .and_then(|u| self.crawlers.claim(u));
            UaFacts { class, claim }
        };
        match &self.ua_cache {
            Some(cache) => cache.facts(ua, compute),
            None => compute(ua),
        }
    }

    pub fn visitor(&self, ip: IpAddr, ua: Option<&str>, hints: ClientHints) -> Visitor {
        let country = self
            .country
            .as_ref()
            .or(self.city.as_ref())
            .and_then(|db| db.country(ip));
        let (city, region) = match &self.city {
            Some(db) => db.place(ip),
            None => (None, None),
        };
        let (asn, as_org) = match &self.asn {
            Some(db) => {
                let (n, org) = db.asn(ip);
                (n, org.map(Box::from))
            }
            None => (None, None),
        };
        let mut anonymous = self
            .anonymous
            .as_ref()
            .map(|db| db.anonymous(ip))
            .unwrap_or_default();
        let mut ip_lists = 0u64;
        for (i, l) in self.lists.iter().enumerate() {
            if l.set.contains(ip) {
                ip_lists |= 1 << i;
                anonymous.0 |= l.anonymous.0;
            }
        }
        let facts = self.ua_facts(ua);
        // Hints never make a bot human, so the claim (asked of bots only) still holds.
        let class = facts.class.with_hints(hints);
        let crawler = self.crawlers.verdict(facts.claim, ip);
        Visitor {
            ip,
            country,
            region,
            city,
            asn,
            as_org,
            ip_lists,
            anonymous,
            bot: class.bot,
            device: class.device,
            os: class.os,
            browser: class.browser,
            crawler,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    fn intel(allow: &[&str]) -> Intel {
        let mut cfg = IntelConfig::default();
        cfg.bots.allow = allow.iter().map(|s| s.to_string()).collect();
        let mut problems = Problems::new();
        let intel = Intel::load(&cfg, &mut problems);
        assert!(problems.is_empty(), "{problems}");
        intel
    }

    #[test]
    fn the_cached_claim_is_the_snapshots_own() {
        let ip: IpAddr = "66.249.64.5".parse().unwrap();
        let mut before = intel(&[]);
        let google = Crawlers::index("googlebot").unwrap();
        before
            .crawlers
            .set_ranges(google, CidrSet::new(["66.249.64.0/27".parse().unwrap()]));
        for _ in 0..2 {
            let v = before.visitor(ip, Some(GOOGLEBOT), ClientHints::default());
            assert!(v.bot);
            assert_eq!(v.crawler, CrawlerVerdict::Verified(google as u8));
            let elsewhere = "203.0.113.9".parse().unwrap();
            let v = before.visitor(elsewhere, Some(GOOGLEBOT), ClientHints::default());
            assert_eq!(v.crawler, CrawlerVerdict::Claimed(google as u8));
        }
        // A reload whose bot list makes this user agent human: no claim, however the last
        // snapshot's cache had it.
        let after = intel(&["(?i)googlebot"]);
        for _ in 0..2 {
            let v = after.visitor(ip, Some(GOOGLEBOT), ClientHints::default());
            assert_eq!((v.bot, v.crawler), (false, CrawlerVerdict::None));
        }
        let uncached = Intel {
            ua_cache: None,
            ..intel(&[])
        };
        assert_eq!(
            uncached.ua_facts(Some(GOOGLEBOT)),
            before.ua_facts(Some(GOOGLEBOT))
        );
        assert_eq!(before.ua_facts(Some("curl/8.5.0")).claim, None);
    }
}
