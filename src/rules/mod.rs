//! Routing rules: upstream pools, named routes and campaigns of ordered flows, compiled once
//! per snapshot and evaluated per request without allocating.

mod compile;
pub mod condition;
pub mod explain;
pub mod ja4;
pub mod model;
pub mod rate;
pub mod request;
pub mod signals;
pub mod sources;
pub mod template;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::identity::Visitor;
#[cfg(test)]
pub(crate) use compile::from_texts;
pub use compile::{load, load_with, rule_files};
pub use condition::Condition;
pub use explain::Step;
pub use request::RequestFacts;
pub use template::{Template, TemplateError, Vars};

/// Index into `Rules::routes`.
pub type RouteId = usize;

/// What the rules decided for one request. Indexes into the snapshot that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub campaign: Option<usize>,
    pub flow: Option<usize>,
    pub route: RouteId,
}

pub struct Rules {
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<Route>,
    pub campaigns: Vec<Campaign>,
    pub fallback: RouteId,
    /// `sources:` in the order written: a click's source is the first whose match holds.
    pub sources: Vec<sources::Source>,
    /// Some flow asks for state (`unique`, `cap`). Only then does a request pay for it: the
    /// visitor cookie, the pseudonym, the click written to the store.
    pub remembers: bool,
    /// Some flow asks `unique`: with a shared store, a visitor without a cookie is looked up
    /// there before the rules run (caps alone need no lookup).
    pub asks_unique: bool,
}

impl Rules {
    /// Whether any flow has a `unique` condition.
    pub fn asks_unique(campaigns: &[Campaign]) -> bool {
        (campaigns.iter().flat_map(|c| &c.flows))
            .any(|f| f.condition.as_ref().is_some_and(Condition::asks_state))
    }

    /// Whether any flow has a cap or a `unique` condition, or any campaign a `click_path`
    /// (its click-through finds the lander's click in the store).
    pub fn asks_state(campaigns: &[Campaign]) -> bool {
        campaigns.iter().any(|c| c.click_path.is_some())
            || (campaigns.iter().flat_map(|c| &c.flows))
                .any(|f| f.cap.is_some() || f.condition.as_ref().is_some_and(Condition::asks_state))
    }
}

/// A pool of peers, picked round-robin.
pub struct Upstream {
    pub name: String,
    pub peers: Vec<SocketAddr>,
    /// Host header sent upstream; `None` keeps the visitor's.
    pub host: Option<http::HeaderValue>,
    pub tls: bool,
    pub sni: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    next: AtomicUsize,
}

impl Upstream {
    pub fn next_peer(&self) -> SocketAddr {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.peers[i % self.peers.len()]
    }
}

pub struct Route {
    pub name: String,
    pub action: Action,
}

pub enum Action {
    Proxy {
        upstream: usize,
        /// Prefix for the visitor's path, without a trailing slash.
        path: String,
    },
    Redirect {
        to: Template,
        status: u16,
        keep_query: bool,
    },
    Respond {
        status: u16,
        body: Bytes,
        content_type: http::HeaderValue,
    },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Proxy { .. } => "proxy",
            Action::Redirect { .. } => "redirect",
            Action::Respond { .. } => "respond",
        }
    }
}

pub struct Campaign {
    pub id: String,
    /// The campaign's name for `unique` (`state::scope`).
    pub scope: u64,
    pub hosts: Vec<HostPattern>,
    pub path_prefix: String,
    /// The lander's click-through path on the campaign's hosts.
    pub click_path: Option<String>,
    pub flows: Vec<Flow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Any,
    /// Lowercase host name.
    Exact(String),
    /// `.example.com` from `*.example.com`: any subdomain, not the bare domain.
    Suffix(String),
}

impl HostPattern {
    /// How specific a match is: exact beats the longest suffix beats any.
    fn score(&self, host: &str) -> Option<usize> {
        match self {
            HostPattern::Any => Some(0),
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h).then_some(usize::MAX),
            HostPattern::Suffix(s) => {
                let n = host.len();
                (n > s.len()
                    && host.is_char_boundary(n - s.len())
                    && host[n - s.len()..].eq_ignore_ascii_case(s))
                .then_some(s.len())
            }
        }
    }
}

pub struct Flow {
    pub name: String,
    /// The flow's name for `unique` with `scope: flow`.
    pub scope: u64,
    pub condition: Option<Condition>,
    /// Checked once the condition holds: a flow whose cap is reached is skipped.
    pub cap: Option<Cap>,
    pub target: Target,
    /// Where the lander's click-through goes (`then`); `None`: the rules' fallback.
    pub then: Option<Target>,
}

/// `cap: { clicks | conversions: N, per, tz }`: the flow serves at most `limit` clicks, or
/// serves until `limit` conversions were attributed to it, per window.
pub struct Cap {
    pub limit: u32,
    pub counts: crate::state::Counted,
    /// The process's counter for this campaign, flow and window: it outlives the snapshot.
    pub counter: std::sync::Arc<crate::state::CapCounter>,
}

impl Cap {
    /// Whether the flow may serve this request; serving takes one click of the cap.
    fn open(&self, req: &RequestFacts) -> bool {
        (req.state.get())
            .cap(&self.counter, self.limit, self.counts)
            .is_ok()
    }
}

pub enum Target {
    Route(RouteId),
    /// Weighted, sticky per visitor: `(route, cumulative weight)`.
    Split {
        branches: Vec<(RouteId, u32)>,
        total: u32,
        /// Per-flow seed so two splits do not move together.
        salt: u64,
    },
}

impl Rules {
    pub fn evaluate(&self, visitor: &Visitor, req: &RequestFacts) -> Decision {
        let Some(ci) = self.campaign_for(req) else {
            return Decision {
                campaign: None,
                flow: None,
                route: self.fallback,
            };
        };
        let campaign = &self.campaigns[ci];
        for (fi, flow) in campaign.flows.iter().enumerate() {
            // The cap last: only a flow about to decide takes a click of it.
            if flow.condition.as_ref().is_none_or(|c| c.eval(visitor, req))
                && flow.cap.as_ref().is_none_or(|cap| cap.open(req))
            {
                return Decision {
                    campaign: Some(ci),
                    flow: Some(fi),
                    route: flow.target.pick(visitor, req),
                };
            }
        }
        Decision {
            campaign: Some(ci),
            flow: None,
            route: self.fallback,
        }
    }

    /// Whether the decided flow has a `then`: its route is a lander, whose click the
    /// click-through will look for.
    pub fn leads_to_click_through(&self, d: &Decision) -> bool {
        d.campaign.zip(d.flow).is_some_and(|(c, f)| {
            let campaign = &self.campaigns[c];
            campaign.click_path.is_some() && campaign.flows[f].then.is_some()
        })
    }

    /// The campaign whose `click_path` this request is, on one of its hosts (the most
    /// specific host wins).
    pub fn click_through(&self, req: &RequestFacts) -> Option<usize> {
        let host = req.hostname();
        let mut best: Option<(usize, usize)> = None;
        for (i, c) in self.campaigns.iter().enumerate() {
            if c.click_path.as_deref() != Some(req.path) {
                continue;
            }
            let Some(score) = c.hosts.iter().filter_map(|h| h.score(host)).max() else {
                continue;
            };
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((i, score));
            }
        }
        best.map(|(i, _)| i)
    }

    /// The click-through of campaign `ci` for `click` (the lander's, as the store found
    /// it): the `then` of the flow that served it decides. An unknown click, one of another
    /// campaign or of a flow that is gone or has no `then`: the fallback, never the flows.
    pub fn continue_click(
        &self,
        ci: usize,
        click: Option<(&str, &str)>,
        visitor: &Visitor,
        req: &RequestFacts,
    ) -> Decision {
        let campaign = &self.campaigns[ci];
        let flow = click
            .filter(|(c, _)| *c == campaign.id)
            .and_then(|(_, f)| campaign.flows.iter().position(|x| x.name == f));
        match flow.and_then(|fi| Some((fi, campaign.flows[fi].then.as_ref()?))) {
            Some((fi, then)) => Decision {
                campaign: Some(ci),
                flow: Some(fi),
                route: then.pick(visitor, req),
            },
            None => Decision {
                campaign: Some(ci),
                flow: None,
                route: self.fallback,
            },
        }
    }

    /// The matching campaign with the longest path prefix; ties go to the most specific host.
    fn campaign_for(&self, req: &RequestFacts) -> Option<usize> {
        let host = req.hostname();
        let mut best: Option<(usize, (usize, usize))> = None;
        for (i, c) in self.campaigns.iter().enumerate() {
            if !req.path.starts_with(&c.path_prefix) {
                continue;
            }
            let Some(host_score) = c.hosts.iter().filter_map(|h| h.score(host)).max() else {
                continue;
            };
            let score = (c.path_prefix.len(), host_score);
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((i, score));
            }
        }
        best.map(|(i, _)| i)
    }

    pub fn route(&self, id: RouteId) -> &Route {
        &self.routes[id]
    }

    pub fn campaign_id(&self, d: &Decision) -> Option<&str> {
        d.campaign.map(|c| self.campaigns[c].id.as_str())
    }

    /// A conversion attributed to the flow `flow` of campaign `campaign`: counted by the
    /// flow's conversion cap, if it has one.
    pub fn count_conversion(&self, campaign: &str, flow: &str, ms: u64) {
        let cap = (self.campaigns.iter().find(|c| c.id == campaign))
            .and_then(|c| c.flows.iter().find(|f| f.name == flow))
            .and_then(|f| f.cap.as_ref())
            .filter(|cap| cap.counts == crate::state::Counted::Conversions);
        if let Some(cap) = cap {
            cap.counter.add(ms);
        }
    }

    pub fn flow_name(&self, d: &Decision) -> Option<&str> {
        Some(self.campaigns[d.campaign?].flows[d.flow?].name.as_str())
    }
}

impl Target {
    fn pick(&self, visitor: &Visitor, req: &RequestFacts) -> RouteId {
        match self {
            Target::Route(r) => *r,
            Target::Split {
                branches,
                total,
                salt,
            } => {
                let h = sticky_hash(*salt, visitor, req.user_agent().unwrap_or(""));
                let point = (h % u64::from(*total)) as u32;
                branches
                    .iter()
                    .find(|(_, upto)| point < *upto)
                    .or(branches.last())
                    .map_or(0, |(r, _)| *r)
            }
        }
    }
}

/// FNV-1a over the visitor's address and user agent, then a final mix: stable across
/// restarts and instances, so a visitor keeps its branch wherever it lands.
fn sticky_hash(salt: u64, visitor: &Visitor, ua: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ salt;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match visitor.ip {
        std::net::IpAddr::V4(a) => eat(&a.octets()),
        std::net::IpAddr::V6(a) => eat(&a.octets()),
    }
    eat(&[0xff]);
    eat(ua.as_bytes());
    // splitmix64 finaliser: FNV's low bits alone are poorly mixed.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A seed for one flow's split, from its campaign and name.
pub(crate) fn split_salt(campaign: &str, flow: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in campaign
        .as_bytes()
        .iter()
        .chain(b"/")
        .chain(flow.as_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
