//! Building a click event from a decision, keeping only what the operator configured.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::{ClickEvent, Pseudonymizer};
use crate::config::{IpPrivacy, PrivacyConfig};
use crate::identity::Visitor;
use crate::url::{percent_decode, query_pairs};

/// Longest user agent or referer kept in an event, in bytes.
const MAX_TEXT: usize = 1024;

/// What events may carry.
#[derive(Clone)]
pub struct EventPolicy {
    pub ip: IpPrivacy,
    /// Parameter names; a trailing `*` matches a prefix.
    pub query_params: Vec<String>,
    pub honor_gpc: bool,
    /// Set when `ip: hash`.
    pub pseudonyms: Option<Arc<Pseudonymizer>>,
}

impl EventPolicy {
    /// Fails only when `ip: hash` cannot keep its salt folder.
    pub fn new(privacy: &PrivacyConfig) -> std::io::Result<EventPolicy> {
        let pseudonyms = match privacy.ip.value {
            IpPrivacy::Hash => Some(Arc::new(Pseudonymizer::open(&privacy.salt_dir)?)),
            _ => None,
        };
        Ok(EventPolicy {
            ip: privacy.ip.value,
            query_params: privacy.query_params.clone(),
            honor_gpc: privacy.honor_gpc,
            pseudonyms,
        })
    }

    fn keeps_param(&self, name: &str) -> bool {
        self.query_params.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == p,
        })
    }

    fn ip(&self, ip: IpAddr, gpc: bool) -> Option<String> {
        match self.ip {
            IpPrivacy::None => None,
            IpPrivacy::Truncate => Some(truncate(ip)),
            _ if gpc => Some(truncate(ip)),
            IpPrivacy::Full => Some(ip.to_string()),
            IpPrivacy::Hash => self.pseudonyms.as_ref().and_then(|p| p.pseudonym(ip)),
        }
    }
}

/// IPv4 /24, IPv6 /48.
fn truncate(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let [a, b, c, _] = a.octets();
            format!("{a}.{b}.{c}.0")
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0).to_string()
        }
    }
}

/// How the request ended.
pub struct Outcome {
    pub ts_ms: u64,
    pub click_id: uuid::Uuid,
    pub status: u16,
    pub upstream: Option<SocketAddr>,
    pub duration: Duration,
}

/// The names a click event carries, from the generation that decided it. Cloning them costs
/// reference counts, not copies, and keeps nothing else of that generation alive.
#[derive(Debug, Clone)]
pub struct ClickNames {
    pub campaign: Option<Arc<str>>,
    pub flow: Option<Arc<str>>,
    pub route: Arc<str>,
    /// `proxy`, `redirect` or `respond`.
    pub action: &'static str,
    /// The generation's list names, indexed by the bits of `Visitor::ip_lists`; `None` when
    /// the visitor is in no list.
    pub lists: Option<Arc<[Arc<str>]>>,
}

/// What the request said that its click event may keep, borrowed from the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen<'a> {
    pub user_agent: Option<&'a str>,
    pub referer: Option<&'a str>,
    /// Without its port.
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The primary subtag of the preferred language, as sent.
    pub language: Option<&'a str>,
    /// `Sec-GPC: 1` was sent (applied when `privacy.honor_gpc` is on).
    pub gpc: bool,
    /// A `rate` condition found the visitor over its rate.
    pub rate_limited: bool,
    /// The visitor's first click in the campaign within the unique window.
    pub unique: Option<bool>,
    /// The TLS client's JA4 fingerprint.
    pub ja4: Option<&'a str>,
}

/// A click's traffic source: its name and the params taken from the click URL.
#[derive(Debug, Clone)]
pub struct SourceOf {
    pub name: Arc<str>,
    pub params: Vec<(Box<str>, String)>,
}

/// What the request path keeps of a request for its click event. Capturing it costs one
/// copy of the request's text into one buffer; privacy and JSON happen on the event
/// worker's thread (`to_event`).
pub struct ClickRecord {
    names: ClickNames,
    visitor: Visitor,
    outcome: Outcome,
    /// `Sec-GPC: 1` was sent (applied when `privacy.honor_gpc` is on).
    gpc: bool,
    rate_limited: bool,
    unique: Option<bool>,
    /// The click's traffic source and its params (hashed fields already hashed).
    source: Option<Box<SourceOf>>,
    /// The request's user agent, referer, host, path, query, language and JA4, clipped, back
    /// to back.
    text: String,
    spans: [Option<(u32, u32)>; 7],
}

const UA: usize = 0;
const REFERER: usize = 1;
const HOST: usize = 2;
const PATH: usize = 3;
const QUERY: usize = 4;
const LANG: usize = 5;
const JA4: usize = 6;

impl ClickRecord {
    /// How the request ended, once it has.
    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome = outcome;
    }

    pub fn click_id(&self) -> uuid::Uuid {
        self.outcome.click_id
    }

    /// The source the click came from.
    pub fn set_source(&mut self, source: Option<Box<SourceOf>>) {
        self.source = source;
    }

    pub fn capture(
        names: ClickNames,
        visitor: Visitor,
        seen: &Seen,
        outcome: Outcome,
    ) -> ClickRecord {
        let parts = [
            seen.user_agent,
            seen.referer,
            Some(seen.host),
            Some(seen.path),
            seen.query,
            seen.language,
            seen.ja4,
        ]
        .map(|p| p.map(clip));
        let mut text = String::with_capacity(parts.iter().flatten().map(|p| p.len()).sum());
        let spans = parts.map(|p| {
            p.map(|p| {
                let start = text.len() as u32;
                text.push_str(p);
                (start, text.len() as u32)
            })
        });
        ClickRecord {
            gpc: seen.gpc,
            rate_limited: seen.rate_limited,
            unique: seen.unique,
            source: None,
            names,
            visitor,
            outcome,
            text,
            spans,
        }
    }

    fn text(&self, part: usize) -> Option<&str> {
        self.spans[part].and_then(|(a, b)| self.text.get(a as usize..b as usize))
    }

    /// The event as the collector receives it, with only what `policy` allows.
    pub fn to_event(&self, policy: &EventPolicy) -> ClickEvent {
        let (names, v) = (&self.names, &self.visitor);
        // Global Privacy Control: the visitor asked not to be tracked beyond what serving needs.
        let gpc = policy.honor_gpc && self.gpc;
        let query = self
            .text(QUERY)
            .map(|q| {
                query_pairs(q)
                    .filter(|(k, _)| policy.keeps_param(k))
                    .map(|(k, v)| (k.to_string(), percent_decode(v).into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let mut click_id = [0u8; 36];
        ClickEvent {
            ts: crate::time::rfc3339(self.outcome.ts_ms),
            click_id: self
                .outcome
                .click_id
                .hyphenated()
                .encode_lower(&mut click_id)
                .to_string(),
            campaign: names.campaign.as_deref().map(String::from),
            flow: names.flow.as_deref().map(String::from),
            route: names.route.to_string(),
            action: names.action.to_string(),
            status: self.outcome.status,
            ip: policy.ip(v.ip, gpc),
            country: v.country.map(|c| c.as_str().to_string()),
            asn: v.asn,
            as_org: v.as_org.as_deref().map(String::from),
            ip_lists: (names.lists.iter().flat_map(|l| l.iter().enumerate()))
                .filter(|(i, _)| v.ip_lists & (1 << i) != 0)
                .map(|(_, name)| name.to_string())
                .collect(),
            anonymous: v.anonymous.names().map(String::from).collect(),
            bot: v.bot,
            device: v.device.as_str().to_string(),
            ua: self.text(UA).filter(|_| !gpc).map(String::from),
            referer: self.text(REFERER).map(String::from),
            host: self.text(HOST).unwrap_or("").to_string(),
            path: self.text(PATH).unwrap_or("").to_string(),
            query,
            lang: self.text(LANG).map(|l| l.to_ascii_lowercase()),
            upstream: self.outcome.upstream.map(|a| a.to_string()),
            duration_ms: self.outcome.duration.as_secs_f64() * 1000.0,
            rate_limited: self.rate_limited,
            unique: self.unique,
            source: self.source.as_ref().map(|s| s.name.to_string()),
            params: (self.source.iter().flat_map(|s| &s.params))
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ja4: self.text(JA4).map(String::from),
            crawler: v.crawler.name().map(String::from),
            crawler_verified: v
                .crawler
                .name()
                .map(|_| matches!(v.crawler, crate::identity::CrawlerVerdict::Verified(_))),
        }
    }
}

fn clip(s: &str) -> &str {
    if s.len() <= MAX_TEXT {
        return s;
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_plain_names_names_the_lists_the_visitor_is_in() {
        let lists: Arc<[Arc<str>]> = ["datacenter", "tor", "vpn"].map(Arc::from).into();
        let names = ClickNames {
            campaign: Some("spring".into()),
            flow: None,
            route: "safe".into(),
            action: "redirect",
            lists: Some(lists),
        };
        let visitor = crate::identity::Intel::default().visitor(
            "10.0.0.1".parse().unwrap(),
            None,
            Default::default(),
        );
        let visitor = Visitor {
            ip_lists: 0b101,
            ..visitor
        };
        let seen = Seen {
            host: "promo.example.com",
            path: "/lp",
            query: Some("utm_source=a%20b&secret=1"),
            ..Seen::default()
        };
        let outcome = Outcome {
            ts_ms: 0,
            click_id: uuid::Uuid::nil(),
            status: 302,
            upstream: None,
            duration: Duration::ZERO,
        };
        let policy = EventPolicy::new(&PrivacyConfig::default()).unwrap();
        let e = ClickRecord::capture(names, visitor, &seen, outcome).to_event(&policy);
        assert_eq!(e.ip_lists, ["datacenter", "vpn"]);
        assert_eq!((e.campaign.as_deref(), e.flow), (Some("spring"), None));
        assert_eq!((e.route.as_str(), e.action.as_str()), ("safe", "redirect"));
        assert_eq!(e.query.get("utm_source").map(String::as_str), Some("a b"));
        assert!(!e.query.contains_key("secret"));
        assert_eq!(
            (e.host.as_str(), e.path.as_str()),
            ("promo.example.com", "/lp")
        );
    }
}
