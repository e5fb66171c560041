//! The metric series a snapshot's requests count into, made when the snapshot is built: every
//! (campaign, flow, route) the rules can decide, each route's and upstream's latency, each
//! campaign's rate limiting. Making them at build starts their series at 0 (a dashboard sees
//! a route before its first visitor) and leaves the request path an index and an increment.

use std::sync::Arc;

use prometheus::{Histogram, IntCounter};

use crate::identity::Visitor;
use crate::metrics::{self, Metrics, RequestCounters, VisitorKind};
use crate::rules::{Action, Decision, RouteId, Rules, Target};

#[derive(Default)]
pub struct Meters {
    /// Requests no campaign took (the fallback route).
    outside: Option<RequestCounters>,
    campaigns: Vec<CampaignMeters>,
    /// By `RouteId`.
    routes: Vec<Histogram>,
    /// By index into `Rules::upstreams`.
    upstreams: Vec<Histogram>,
}

struct CampaignMeters {
    /// No flow took the request (the fallback route).
    fallback: RequestCounters,
    /// Per flow, the routes its target may pick.
    flows: Vec<Vec<(RouteId, RequestCounters)>>,
    rate_limited: IntCounter,
}

/// What kind of visitor `flowgate_requests_total` counts it as.
pub fn visitor_kind(v: &Visitor) -> VisitorKind {
    // A crawler only claimed, not verified from its published ranges, is any other bot.
    if let crate::identity::CrawlerVerdict::Verified(_) = v.crawler {
        VisitorKind::VerifiedCrawler
    } else if v.bot {
        VisitorKind::Bot
    } else {
        VisitorKind::Human
    }
}

impl Meters {
    /// The series of `rules`, made now in `metrics` (zero-initialised).
    pub fn new(rules: &Rules, metrics: &Arc<Metrics>) -> Meters {
        let route_name = |r: RouteId| rules.routes[r].name.as_str();
        let counters = |campaign: &str, flow: &str, r: RouteId| {
            let classes = match &rules.routes[r].action {
                Action::Respond { status, .. } | Action::Redirect { status, .. } => {
                    metrics::class_bit(*status)
                }
                Action::Proxy { .. } => metrics::ANY_CLASS,
            };
            metrics.request_counters(campaign, flow, route_name(r), classes)
        };
        let campaigns = (rules.campaigns.iter())
            .map(|c| {
                let flows = (c.flows.iter())
                    .map(|f| {
                        let mut routes: Vec<RouteId> = match &f.target {
                            Target::Route(r) => vec![*r],
                            Target::Split { branches, .. } => {
                                branches.iter().map(|(r, _)| *r).collect()
                            }
                        };
                        routes.sort_unstable();
                        routes.dedup();
                        (routes.into_iter())
                            .map(|r| (r, counters(&c.id, &f.name, r)))
                            .collect()
                    })
                    .collect();
                CampaignMeters {
                    fallback: counters(&c.id, "", rules.fallback),
                    flows,
                    rate_limited: metrics.rate_limited.with_label_values(&[&c.id]),
                }
            })
            .collect();
        for up in &rules.upstreams {
            for kind in metrics::UPSTREAM_ERROR_KINDS {
                metrics.upstream_errors.with_label_values(&[&up.name, kind]);
            }
        }
        Meters {
            outside: Some(counters("", "", rules.fallback)),
            campaigns,
            routes: (rules.routes.iter())
                .map(|r| metrics.request_duration.with_label_values(&[&r.name]))
                .collect(),
            upstreams: (rules.upstreams.iter())
                .map(|u| metrics.upstream_duration.with_label_values(&[&u.name]))
                .collect(),
        }
    }

    fn counters(&self, d: &Decision) -> Option<&RequestCounters> {
        let Some(ci) = d.campaign else {
            return self.outside.as_ref();
        };
        let c = self.campaigns.get(ci)?;
        match d.flow {
            None => Some(&c.fallback),
            Some(fi) => c
                .flows
                .get(fi)?
                .iter()
                .find(|(r, _)| *r == d.route)
                .map(|(_, c)| c),
        }
    }

    /// One answered request: its count and its route's latency.
    pub fn answered(&self, d: &Decision, visitor: VisitorKind, status: u16, took: f64) {
        if let Some(c) = self.counters(d) {
            c.count(visitor, status);
        }
        if let Some(h) = self.routes.get(d.route) {
            h.observe(took);
        }
    }

    pub fn rate_limited(&self, d: &Decision) {
        if let Some(c) = d.campaign.and_then(|ci| self.campaigns.get(ci)) {
            c.rate_limited.inc();
        }
    }

    /// The latency histogram of upstream `index` of the rules.
    pub fn upstream(&self, index: usize) -> Option<&Histogram> {
        self.upstreams.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
upstreams: { landing: { peers: ["127.0.0.1:9"] } }
routes:
  offer: { proxy: { upstream: landing } }
  shop: { redirect: { to: "https://shop.example.com/" } }
  safe: { respond: { body: safe } }
fallback: safe
campaigns:
  - id: spring
    flows:
      - { name: ab, to: { offer: 50, shop: 50 } }
"#;

    fn setup() -> (Rules, Arc<Metrics>, Meters) {
        let intel = crate::identity::Intel::default();
        let rules = crate::rules::from_texts(&[("rules/main.yaml", RULES)], &intel)
            .unwrap_or_else(|p| panic!("{p}"));
        let metrics = Arc::new(Metrics::new().unwrap());
        let meters = Meters::new(&rules, &metrics);
        (rules, metrics, meters)
    }

    fn series(m: &Metrics) -> Vec<String> {
        let text = String::from_utf8(m.render()).unwrap();
        let lines = text
            .lines()
            .filter(|l| l.starts_with("flowgate_requests_total{"));
        lines.map(String::from).collect()
    }

    #[test]
    fn every_route_a_flow_or_fallback_can_pick_starts_at_zero_by_visitor_and_its_classes() {
        let (_, metrics, _) = setup();
        let all = series(&metrics);
        let count = |campaign: &str, flow: &str, route: &str, class: &str| {
            let labels = format!("campaign=\"{campaign}\",flow=\"{flow}\",route=\"{route}\",status_class=\"{class}\"");
            (all.iter())
                .filter(|l| l.contains(&labels) && l.ends_with(" 0"))
                .count()
        };
        // A proxy route answers with whatever the upstream says; the others with their own.
        for class in metrics::STATUS_CLASSES {
            assert_eq!(count("spring", "ab", "offer", class), 3, "{class}");
        }
        assert_eq!(count("spring", "ab", "shop", "3xx"), 3);
        assert_eq!(count("spring", "", "safe", "2xx"), 3);
        assert_eq!(count("", "", "safe", "2xx"), 3);
        // 5 classes x 3 visitors for offer, 3 visitors each for shop and both fallbacks.
        assert_eq!(all.len(), 15 + 3 + 3 + 3, "{all:#?}");
        let text = String::from_utf8(metrics.render()).unwrap();
        for series in [
            "flowgate_upstream_errors_total{kind=\"connect\",upstream=\"landing\"} 0",
            "flowgate_rate_limited_total{campaign=\"spring\"} 0",
            "flowgate_upstream_request_duration_seconds_count{upstream=\"landing\"} 0",
            "flowgate_request_duration_seconds_count{route=\"shop\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing:\n{text}");
        }
    }

    #[test]
    fn a_decision_counts_into_its_own_series_and_its_route_latency() {
        let (rules, metrics, meters) = setup();
        let shop = rules.routes.iter().position(|r| r.name == "shop").unwrap();
        let d = Decision {
            campaign: Some(0),
            flow: Some(0),
            route: shop,
        };
        meters.answered(&d, VisitorKind::Bot, 302, 0.002);
        meters.answered(&d, VisitorKind::Human, 302, 0.002);
        meters.answered(&d, VisitorKind::Bot, 302, 0.002);
        let get = |v: &str| {
            let labels = ["spring", "ab", "shop", v, "3xx"];
            metrics.requests.with_label_values(&labels).get()
        };
        assert_eq!(
            (get("bot"), get("human"), get("verified_crawler")),
            (2, 1, 0)
        );
        let took = metrics.request_duration.with_label_values(&["shop"]);
        assert_eq!(took.get_sample_count(), 3);
    }
}
