//! What a click event costs: building it and queueing it on the request path, and how many
//! the file sink writes per second on one core.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flowgate::config::{BatchConfig, Config, FileSinkConfig};
use flowgate::events::{
    self, Batch, Event, EventPolicy, EventWorker, FileSink, Outcome, Record, Sink,
};
use flowgate::metrics::Metrics;
use flowgate::rules::RequestFacts;
use flowgate::snapshot::Snapshot;
use http::{HeaderMap, Method};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/r.yaml"),
        "routes: { offer: { respond: { body: x } } }\ncampaigns: [ { id: spring, flows: [ { name: paid, to: offer } ] } ]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("flowgate.yaml"),
        "rules: rules\nevents: { sink: none }\n",
    )
    .unwrap();
    let config = Config::load(&dir.path().join("flowgate.yaml")).unwrap();
    let snap = Snapshot::build(&config, 1).unwrap();
    let policy = EventPolicy::new(&config.privacy).unwrap();

    let mut headers = HeaderMap::new();
    headers.insert("user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1".parse().unwrap());
    headers.insert("referer", "https://news.example/article".parse().unwrap());
    headers.insert("accept-language", "en-US,en;q=0.9".parse().unwrap());
    let facts = RequestFacts {
        method: &Method::GET,
        host: "promo.example.com",
        path: "/spring/lp",
        query: Some("gclid=Cj0KCQiA&utm_source=google&utm_campaign=spring&x=1"),
        headers: &headers,
        at: None,
        rate_limited: Default::default(),
        state: Default::default(),
        ja4: None,
    };
    let visitor = snap.intel.visitor(
        "81.2.69.142".parse().unwrap(),
        facts.user_agent(),
        Default::default(),
    );
    let decision = snap.rules.evaluate(&visitor, &facts);
    let snap = Arc::new(snap);
    let capture = || {
        let outcome = Outcome {
            ts_ms: flowgate::time::now_ms(),
            click_id: events::new_click_id(),
            status: 200,
            upstream: Some("127.0.0.1:8081".parse().unwrap()),
            duration: Duration::from_micros(850),
        };
        flowgate::proxy::click::record(
            &snap,
            visitor.clone(),
            &decision,
            &facts,
            Some(true),
            outcome,
        )
    };
    let make = || Record::Click(Box::new(capture())).into_event(&policy);

    let mut g = c.benchmark_group("events");
    // On the request path: capture what the event needs.
    g.bench_function("capture_click", |b| b.iter(|| black_box(capture())));
    // On the worker: name, apply privacy, build the event.
    let record = capture();
    g.bench_function("worker_to_event", |b| {
        b.iter(|| black_box(record.to_event(&policy)))
    });

    // The request side: build + try_send into the bounded queue a worker drains.
    struct Discard;
    impl Sink for Discard {
        fn deliver(&mut self, _: &Batch) {}
        fn tick(&mut self, _: std::time::Instant) {}
        fn close(&mut self) {}
    }
    let metrics = Arc::new(Metrics::new().unwrap());
    let worker_policy = EventPolicy::new(&config.privacy).unwrap();
    let (queue, worker) = EventWorker::start(
        Box::new(Discard),
        1 << 20,
        BatchConfig::default(),
        worker_policy,
        metrics.clone(),
    )
    .unwrap();
    // The whole request-path cost: capture + try_send into the bounded queue.
    g.bench_function("capture_and_queue", |b| {
        b.iter(|| queue.send(Record::Click(Box::new(capture()))))
    });
    worker.close();

    // The file sink on one core: serialize a batch of 1,000 and append it.
    let events: Vec<Event> = (0..1000).map(|_| make()).collect();
    let file_cfg = FileSinkConfig {
        dir: dir.path().join("events"),
        ..FileSinkConfig::default()
    };
    let mut sink = FileSink::open(&file_cfg, metrics).unwrap();
    g.throughput(Throughput::Elements(1000));
    g.bench_function("file_sink_1000_events", |b| {
        b.iter_batched_ref(
            Batch::new,
            |batch| {
                for e in &events {
                    let _ = batch.push(e);
                }
                sink.deliver(batch);
            },
            BatchSize::SmallInput,
        )
    });
    // The same batch as the ClickHouse sink's rows.
    let mut rows = events::clickhouse::RowEncoder::default();
    let mut out = Vec::with_capacity(1 << 20);
    g.bench_function("clickhouse_rows_1000_events", |b| {
        b.iter(|| {
            out.clear();
            for e in &events {
                let _ = rows.encode(e, &mut out);
                out.push(b'\n');
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
