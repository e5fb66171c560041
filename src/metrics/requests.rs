//! The request counters of one (campaign, flow, route), resolved once per snapshot: the
//! request path counts into a handle it already holds instead of hashing label strings.

use std::sync::Arc;

use prometheus::IntCounter;

use super::Metrics;

/// The `visitor` label. `verified_crawler`: a search-engine crawler's user agent from an
/// address in that crawler's published ranges (`intel.crawlers`); a claim from elsewhere is
/// a `bot`.
pub const VISITORS: [&str; 3] = ["human", "bot", "verified_crawler"];

/// The `status_class` label, by the first digit of the status.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Every class: what a route that proxies may answer with.
pub const ANY_CLASS: u8 = 0b1_1111;

/// The `kind` label of `flowgate_upstream_errors_total`.
pub const UPSTREAM_ERROR_KINDS: [&str; 5] =
    ["connect", "connect_timeout", "tls", "timeout", "protocol"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitorKind {
    Human = 0,
    Bot = 1,
    VerifiedCrawler = 2,
}

/// Index into `STATUS_CLASSES`; a status outside 100-599 counts with its nearest class.
pub fn status_class(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5)) - 1
}

/// The class bit of one status, for `Metrics::request_counters`.
pub fn class_bit(status: u16) -> u8 {
    1 << status_class(status)
}

/// The counters of one (campaign, flow, route) by visitor kind and status class. Only the
/// classes the route can answer with are made: a redirect's series of other classes would
/// be zero forever.
pub struct RequestCounters {
    by: [[Option<IntCounter>; 5]; 3],
    labels: [Arc<str>; 3],
    metrics: Arc<Metrics>,
}

impl RequestCounters {
    pub fn count(&self, visitor: VisitorKind, status: u16) {
        let class = status_class(status);
        match &self.by[visitor as usize][class] {
            Some(c) => c.inc(),
            // A class the route was not expected to answer with: counted all the same.
            None => {
                let [campaign, flow, route] = &self.labels;
                let labels = [
                    &**campaign,
                    flow,
                    route,
                    VISITORS[visitor as usize],
                    STATUS_CLASSES[class],
                ];
                self.metrics.requests.with_label_values(&labels).inc();
            }
        }
    }
}

impl Metrics {
    /// The counters of (campaign, flow, route), each of the classes in `classes` (bits of
    /// `STATUS_CLASSES`) made now, at 0.
    pub fn request_counters(
        self: &Arc<Self>,
        campaign: &str,
        flow: &str,
        route: &str,
        classes: u8,
    ) -> RequestCounters {
        let by = std::array::from_fn(|v| {
            std::array::from_fn(|c| {
                (classes & (1 << c) != 0).then(|| {
                    let labels = [campaign, flow, route, VISITORS[v], STATUS_CLASSES[c]];
                    self.requests.with_label_values(&labels)
                })
            })
        });
        RequestCounters {
            by,
            labels: [campaign.into(), flow.into(), route.into()],
            metrics: self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_fall_in_their_class() {
        let classes: Vec<&str> = [101, 200, 302, 404, 499, 502, 99, 700]
            .iter()
            .map(|s| STATUS_CLASSES[status_class(*s)])
            .collect();
        assert_eq!(
            classes,
            ["1xx", "2xx", "3xx", "4xx", "4xx", "5xx", "1xx", "5xx"]
        );
    }

    #[test]
    fn a_route_counts_by_visitor_and_class_and_its_expected_classes_start_at_zero() {
        let m = Arc::new(Metrics::new().unwrap());
        let c = m.request_counters("c", "f", "offer", class_bit(302));
        let text = String::from_utf8(m.render()).unwrap();
        for visitor in VISITORS {
            let series = format!(
                "flowgate_requests_total{{campaign=\"c\",flow=\"f\",route=\"offer\",status_class=\"3xx\",visitor=\"{visitor}\"}} 0"
            );
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
        assert!(!text.contains("status_class=\"2xx\""), "{text}");
        c.count(VisitorKind::Bot, 302);
        c.count(VisitorKind::Bot, 302);
        // Not expected of a redirect, and counted anyway.
        c.count(VisitorKind::Human, 500);
        let get = |v: &str, class: &str| {
            m.requests
                .with_label_values(&["c", "f", "offer", v, class])
                .get()
        };
        assert_eq!(
            (get("bot", "3xx"), get("human", "3xx"), get("human", "5xx")),
            (2, 0, 1)
        );
    }
}
