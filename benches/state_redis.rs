//! What a shared Redis store adds to a request on the request path, against a real
//! redis-server on loopback started here (the bench says so and does nothing without one):
//! a cookie-less visitor looked up by pseudonym before the rules, and a cap's click taken in
//! Redis once the rules chose its flow. Compare with `state` (the embedded store).

use std::hint::black_box;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use flowgate::config::StateConfig;
use flowgate::metrics::Metrics;
use flowgate::state::{scope, Counted, Per, State, View};
use flowgate::yaml::At;
use http::HeaderMap;

const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                  (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<(Server, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server(child);
    let url = format!("redis://127.0.0.1:{port}/0");
    let client = redis::Client::open(url.as_str()).ok()?;
    for _ in 0..200 {
        let up = client
            .get_connection_with_timeout(Duration::from_millis(100))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if up.is_ok() {
            return Some((server, url));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

fn bench(c: &mut Criterion) {
    let Some((_server, url)) = start_redis() else {
        eprintln!("state_redis: no redis-server on this machine; nothing measured");
        return;
    };
    let cfg = StateConfig {
        redis: Some(At::new(url)),
        deadline: At::new(flowgate::config::Timeout(Duration::from_millis(50))),
        ..StateConfig::default()
    };
    let metrics = Arc::new(Metrics::new().unwrap());
    let state = State::open(&cfg, &[], metrics.clone()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let none = HeaderMap::new();
    let campaign = scope("spring", None);

    c.bench_function(
        "state (redis): a visitor without a cookie looked up (HGETALL), unique answered",
        |b| {
            b.iter(|| {
                let mut visit = state.visit(ip, Some(UA), &none);
                rt.block_on(state.recall(&mut visit));
                black_box(visit.unique(campaign, 86_400_000))
            })
        },
    );

    let counter = state
        .caps()
        .counter("spring/capped/clicks/day+180", Per::Day, 180);
    c.bench_function(
        "state (redis): a cap's click taken in Redis (the claim script)",
        |b| {
            b.iter(|| {
                let visit = state.visit(ip, Some(UA), &none);
                black_box(
                    View::Live(&visit)
                        .cap(&counter, u32::MAX, Counted::Clicks)
                        .is_ok(),
                );
                black_box(rt.block_on(state.confirm(&visit)))
            })
        },
    );
    state.close();
    eprintln!(
        "state_redis: {} store errors (deadline 50 ms)",
        metrics.state_errors.get()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
