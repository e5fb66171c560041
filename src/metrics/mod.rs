//! Every Prometheus collector, registered once per process in its own registry.

mod requests;

use std::sync::Mutex;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use requests::{
    class_bit, status_class, RequestCounters, VisitorKind, ANY_CLASS, STATUS_CLASSES,
    UPSTREAM_ERROR_KINDS, VISITORS,
};

/// The label values known before any traffic: their series start at 0 instead of appearing
/// at their first increment, so `rate()` and alerts see the whole story.
const EVENT_OUTCOMES: [&str; 6] = [
    "written", "sent", "spooled", "replayed", "dropped", "failed",
];
const RELOAD_OUTCOMES: [&str; 2] = ["ok", "error"];
const REFUSAL_LIMITS: [&str; 2] = ["listener", "peer"];
const STATE_OUTCOMES: [&str; 3] = ["written", "dropped", "failed"];

pub struct Metrics {
    pub registry: Registry,
    /// `campaign`, `flow`, `route`: names from the rules, never visitor data; `visitor`
    /// (`VISITORS`) and `status_class` (`STATUS_CLASSES`). Counted through the handles of
    /// `request_counters`, made once per snapshot.
    pub requests: IntCounterVec,
    /// `route`: time to the response head.
    pub request_duration: HistogramVec,
    /// `upstream`: time from sending the request to the upstream's response head.
    pub upstream_duration: HistogramVec,
    /// `upstream`, `kind` (`UPSTREAM_ERROR_KINDS`).
    pub upstream_errors: IntCounterVec,
    /// Body bytes from visitors (`in`: request bodies sent on upstream, and tunnels' bytes
    /// from the visitor) and to visitors (`out`: response bodies, tunnels' bytes to the
    /// visitor).
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    /// Requests being answered; set from the drain's own count at every scrape.
    pub requests_in_flight: IntGauge,
    /// `outcome`: written, sent, spooled, replayed, dropped, failed.
    pub events: IntCounterVec,
    pub event_queue_depth: IntGauge,
    /// Bytes of event batches waiting in the spool for the collector.
    pub spool_bytes: IntGauge,
    pub sink_request_duration: Histogram,
    /// `outcome`: ok, error.
    pub reloads: IntCounterVec,
    /// `outcome`: when a reload last ended that way (unix seconds; start-up counts as ok).
    pub last_reload: IntGaugeVec,
    /// `source`: seconds since the serving data of an intel source was built (a database's
    /// build time, a list file's modification time); set from `intel_built` at every scrape.
    pub intel_age: IntGaugeVec,
    /// (source, unix seconds built) of the serving snapshot.
    pub intel_built: Mutex<Vec<(String, u64)>>,
    pub snapshot_generation: IntGauge,
    /// `source`: a list's name; networks as written.
    pub intel_entries: IntGaugeVec,
    /// `source`: a database kind (`country`, `city`, `asn`, `anonymous`); nodes of its
    /// search tree, which are not networks.
    pub intel_database_nodes: IntGaugeVec,
    /// `source`: lines a `skip_bad_lines` list skipped.
    pub intel_skipped_lines: IntGaugeVec,
    pub build_info: IntGaugeVec,
    /// `campaign` (live), `live_route`, `shadow_route`: every shadow decision, so agreement
    /// and disagreement rates are both visible.
    pub shadow_decisions: IntCounterVec,
    pub connections_open: IntGauge,
    /// Connections closed unserved, by the limit they met (`listener`, `peer`).
    pub connections_refused: IntCounterVec,
    /// Requests a `rate` condition found over its rate.
    pub rate_limited: IntCounterVec,
    /// Clicks handed to the state store, by `outcome`: written, dropped, failed.
    pub state_clicks: IntCounterVec,
    /// Operations of the state store that failed (a write, a purge, a load).
    pub state_errors: prometheus::IntCounter,
    /// Conversions forwarded to traffic sources, by source (a rules name) and outcome
    /// (delivered, retrying, rejected, filtered, dropped).
    pub postbacks: IntCounterVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let latency = |name: &str, help: &str, label: &str| {
            let opts = HistogramOpts::new(name, help).buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]);
            let h = HistogramVec::new(opts, &[label])?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let bytes = counter(
            "flowgate_bytes_total",
            "Body bytes from visitors (in) and to visitors (out), tunnels included.",
            &["direction"],
        )?;
        let sink_request_duration = Histogram::with_opts(
            HistogramOpts::new(
                "flowgate_event_sink_request_duration_seconds",
                "Time the collector took to answer one batch.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        registry.register(Box::new(sink_request_duration.clone()))?;
        let m = Metrics {
            requests: counter(
                "flowgate_requests_total",
                "Requests by the campaign, flow and route that served them, the kind of visitor and the status class of the answer.",
                &["campaign", "flow", "route", "visitor", "status_class"],
            )?,
            request_duration: latency(
                "flowgate_request_duration_seconds",
                "Time from request to response head, by route.",
                "route",
            )?,
            upstream_duration: latency(
                "flowgate_upstream_request_duration_seconds",
                "Time from sending a request upstream to the upstream's response head.",
                "upstream",
            )?,
            bytes_in: bytes.with_label_values(&["in"]),
            bytes_out: bytes.with_label_values(&["out"]),
            requests_in_flight: gauge(
                "flowgate_requests_in_flight",
                "Requests being answered (a response body still streaming counts).",
            )?,
            upstream_errors: counter(
                "flowgate_upstream_errors_total",
                "Failed upstream requests by upstream and kind.",
                &["upstream", "kind"],
            )?,
            events: counter(
                "flowgate_events_total",
                "Click events by outcome.",
                &["outcome"],
            )?,
            event_queue_depth: gauge(
                "flowgate_event_queue_depth",
                "Click events waiting for the sink.",
            )?,
            spool_bytes: gauge(
                "flowgate_event_spool_bytes",
                "Bytes of click events spooled on disk for the collector.",
            )?,
            sink_request_duration,
            reloads: counter(
                "flowgate_reloads_total",
                "Snapshot reloads by outcome.",
                &["outcome"],
            )?,
            last_reload: gauge_vec(
                "flowgate_last_reload_timestamp_seconds",
                "When a reload last ended with this outcome; start-up counts as ok.",
                &["outcome"],
            )?,
            intel_age: gauge_vec(
                "flowgate_intel_age_seconds",
                "Age of the serving data of an intel source (database build time, list file time).",
                &["source"],
            )?,
            intel_built: Mutex::new(Vec::new()),
            snapshot_generation: gauge(
                "flowgate_snapshot_generation",
                "Generation of the snapshot serving traffic.",
            )?,
            intel_entries: gauge_vec(
                "flowgate_intel_entries",
                "Networks of each IP list, as written.",
                &["source"],
            )?,
            intel_database_nodes: gauge_vec(
                "flowgate_intel_database_nodes",
                "Nodes of each intel database's search tree (not networks).",
                &["source"],
            )?,
            shadow_decisions: counter(
                "flowgate_shadow_decisions_total",
                "Decisions of the shadow rules beside the live route they would replace.",
                &["campaign", "live_route", "shadow_route"],
            )?,
            connections_open: gauge(
                "flowgate_connections_open",
                "Visitor connections being served.",
            )?,
            connections_refused: counter(
                "flowgate_connections_refused_total",
                "Visitor connections closed unserved, by the limit they met.",
                &["limit"],
            )?,
            rate_limited: counter(
                "flowgate_rate_limited_total",
                "Requests a rate condition found over its rate, by campaign.",
                &["campaign"],
            )?,
            intel_skipped_lines: gauge_vec(
                "flowgate_intel_skipped_lines",
                "Unparsable lines skipped in IP lists with skip_bad_lines.",
                &["source"],
            )?,
            build_info: gauge_vec(
                "flowgate_build_info",
                "Always 1; the version and commit labels say which flowgate runs.",
                &["version", "commit"],
            )?,
            postbacks: counter(
                "flowgate_postbacks_total",
                "Conversions forwarded to traffic sources, by source and outcome.",
                &["source", "outcome"],
            )?,
            state_clicks: counter(
                "flowgate_state_clicks_total",
                "Clicks handed to the state store (unique, caps), by outcome.",
                &["outcome"],
            )?,
            state_errors: {
                let c = prometheus::IntCounter::new(
                    "flowgate_state_errors_total",
                    "Operations of the state store that failed.",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            registry,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("FLOWGATE_COMMIT")])
            .set(1);
        for outcome in EVENT_OUTCOMES {
            m.events.with_label_values(&[outcome]);
        }
        for outcome in RELOAD_OUTCOMES {
            m.reloads.with_label_values(&[outcome]);
        }
        for outcome in STATE_OUTCOMES {
            m.state_clicks.with_label_values(&[outcome]);
        }
        for limit in REFUSAL_LIMITS {
            m.connections_refused.with_label_values(&[limit]);
        }
        m.reload_ended("ok");
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(m)
    }

    /// A reload (or the start-up build) ended with `outcome` now.
    pub fn reload_ended(&self, outcome: &str) {
        let now = i64::try_from(crate::time::now_ms() / 1000).unwrap_or(i64::MAX);
        self.last_reload.with_label_values(&[outcome]).set(now);
    }

    /// The serving snapshot's intel sources and when each was built.
    pub fn set_intel_built(&self, built: Vec<(String, u64)>) {
        if let Ok(mut b) = self.intel_built.lock() {
            *b = built;
        }
    }

    /// The Prometheus text exposition of every collector.
    pub fn render(&self) -> Vec<u8> {
        let now = crate::time::now_ms() / 1000;
        if let Ok(built) = self.intel_built.lock() {
            self.intel_age.reset();
            for (source, at) in built.iter() {
                let age = i64::try_from(now.saturating_sub(*at)).unwrap_or(i64::MAX);
                self.intel_age.with_label_values(&[source]).set(age);
            }
        }
        let mut out = Vec::new();
        // Encoding into a Vec fails only on malformed collectors, which we never register.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
