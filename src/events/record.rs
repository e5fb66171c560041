//! Building a click event from a decision, keeping only what the operator configured.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use std::sync::Arc;

use super::{ClickEvent, Pseudonymizer};
use crate::config::{IpPrivacy, PrivacyConfig};
use crate::identity::Visitor;
use crate::rules::request::{percent_decode, query_pairs};
use crate::rules::{Decision, RequestFacts};
use crate::snapshot::Snapshot;

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
pub struct Outcome<'a> {
    pub ts_ms: u64,
    pub click_id: &'a str,
    pub status: u16,
    pub upstream: Option<SocketAddr>,
    pub duration: Duration,
}

pub fn click_event(
    snap: &Snapshot,
    visitor: &Visitor,
    decision: &Decision,
    req: &RequestFacts,
    outcome: &Outcome,
    policy: &EventPolicy,
) -> ClickEvent {
    let route = snap.rules.route(decision.route);
    // Global Privacy Control: the visitor asked not to be tracked beyond what serving needs.
    let gpc = policy.honor_gpc && req.header("sec-gpc").is_some_and(|v| v.trim() == "1");
    let query: BTreeMap<String, String> = req
        .query
        .map(|q| {
            query_pairs(q)
                .filter(|(k, _)| policy.keeps_param(k))
                .map(|(k, v)| (k.to_string(), clip(&percent_decode(v)).to_string()))
                .collect()
        })
        .unwrap_or_default();
    ClickEvent {
        ts: super::time::rfc3339(outcome.ts_ms),
        click_id: outcome.click_id.to_string(),
        campaign: snap.rules.campaign_id(decision).map(String::from),
        flow: snap.rules.flow_name(decision).map(String::from),
        route: route.name.clone(),
        action: route.action.kind().to_string(),
        status: outcome.status,
        ip: policy.ip(visitor.ip, gpc),
        country: visitor.country.map(|c| c.as_str().to_string()),
        asn: visitor.asn,
        as_org: visitor.as_org.as_deref().map(String::from),
        ip_lists: snap
            .intel
            .list_names(visitor.ip_lists)
            .map(String::from)
            .collect(),
        anonymous: visitor.anonymous.names().map(String::from).collect(),
        bot: visitor.bot,
        device: visitor.device.as_str().to_string(),
        ua: req
            .user_agent()
            .filter(|_| !gpc)
            .map(|s| clip(s).to_string()),
        referer: req.header("referer").map(|s| clip(s).to_string()),
        host: clip(req.hostname()).to_string(),
        path: clip(req.path).to_string(),
        query,
        lang: req.primary_language().map(|l| l.to_ascii_lowercase()),
        upstream: outcome.upstream.map(|a| a.to_string()),
        duration_ms: outcome.duration.as_secs_f64() * 1000.0,
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
