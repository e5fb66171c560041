//! What counting one request costs the request path: the per-snapshot handles of `Meters`
//! (request counter by visitor and status class, route and upstream latency, body bytes)
//! beside the label lookup it replaced (`with_label_values` on campaign, flow and route, and
//! one unlabelled histogram). 5 campaigns × 10 flows, one of them a split.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use flowgate::config::Config;
use flowgate::metrics::{Metrics, VisitorKind};
use flowgate::rules::Decision;
use flowgate::snapshot::{Meters, Snapshot};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts};

fn ruleset() -> String {
    let mut r = String::from(
        "upstreams:\n  landing: { peers: [\"127.0.0.1:8081\"] }\nroutes:\n  \
         offer: { proxy: { upstream: landing, path: /offer } }\n  \
         safe: { proxy: { upstream: landing, path: /safe } }\n  \
         shop: { redirect: { to: \"https://shop.example.com/\" } }\ncampaigns:\n",
    );
    for c in 0..5 {
        r.push_str(&format!(
            "  - id: c{c}\n    match: {{ path_prefix: /p{c}/ }}\n    flows:\n"
        ));
        for i in 0..9 {
            let to = if i == 6 {
                "{ offer: 80, shop: 20 }"
            } else {
                "safe"
            };
            r.push_str(&format!(
                "      - {{ name: f{i}, if: {{ path: /p{c}/f{i} }}, to: {to} }}\n"
            ));
        }
        r.push_str("      - { name: rest, to: offer }\n");
    }
    r
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/bench.yaml"), ruleset()).unwrap();
    let config = dir.path().join("flowgate.yaml");
    std::fs::write(&config, "rules: rules\nevents: { sink: none }\n").unwrap();
    let snap = Snapshot::build(&Config::load(&config).unwrap(), 1).unwrap();
    let metrics = Arc::new(Metrics::new().unwrap());
    let meters = Meters::new(&snap.rules, &metrics);
    let offer = snap.rules.routes.iter().position(|r| r.name == "offer");
    // Campaign c3, flow f6: the split, whose route is found among its branches.
    let d = Decision {
        campaign: Some(3),
        flow: Some(6),
        route: offer.unwrap(),
    };
    let (campaign, flow, route) = ("c3", "f6", "offer");

    let mut g = c.benchmark_group("metrics per request");
    g.bench_function(
        "now: Meters (count, route and upstream latency, bytes)",
        |b| {
            let upstream = meters.upstream(0).unwrap();
            b.iter(|| {
                meters.answered(black_box(&d), VisitorKind::Human, black_box(200), 0.0012);
                upstream.observe(black_box(0.001));
                metrics.bytes_out.inc_by(black_box(3074));
            })
        },
    );
    g.bench_function(
        // The upstream's latency ends with the request's own clock reading (there before):
        // only the reading when the request goes upstream is new.
        "now: a proxied request's, with the clock read when it goes upstream",
        |b| {
            let upstream = meters.upstream(0).unwrap();
            b.iter(|| {
                black_box(std::time::Instant::now());
                upstream.observe(black_box(0.001));
                meters.answered(black_box(&d), VisitorKind::Human, black_box(200), 0.0012);
                metrics.bytes_out.inc_by(black_box(3074));
            })
        },
    );
    g.bench_function("now: Meters, the count and route latency only", |b| {
        b.iter(|| meters.answered(black_box(&d), VisitorKind::Human, black_box(200), 0.0012))
    });
    // What the request path did before: three label strings hashed and looked up under a
    // lock, then one histogram for every route.
    let old = IntCounterVec::new(
        Opts::new("old_total", "old"),
        &["campaign", "flow", "route"],
    )
    .unwrap();
    let old_duration = Histogram::with_opts(HistogramOpts::new("old_seconds", "old")).unwrap();
    old.with_label_values(&[campaign, flow, route]);
    g.bench_function(
        "before: with_label_values(campaign, flow, route) + histogram",
        |b| {
            b.iter(|| {
                old.with_label_values(black_box(&[campaign, flow, route]))
                    .inc();
                old_duration.observe(black_box(0.0012));
            })
        },
    );
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
