//! Waiting on state, never for a fixed time: poll what the test can observe (a metric, an
//! event line, a file, a socket) until it holds or a deadline passes.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::client::get;

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` until it holds; panics naming `what` once `limit` has passed.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        thread::sleep(POLL);
    }
    start.elapsed()
}

/// Polls `f` until it gives a value, or gives up after `limit` with its last answer.
pub fn poll_until<T>(limit: Duration, mut f: impl FnMut() -> Result<T, T>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(v) if start.elapsed() >= limit => return v,
            Err(_) => thread::sleep(POLL),
        }
    }
}

/// A delay that is the behaviour under test — a visitor on a slow link, a slow upstream, a
/// client that does not hammer — not a wait for something to happen.
pub fn pace(d: Duration) {
    thread::sleep(d);
}

/// For programs that are told their port (haproxy): waits until it accepts connections.
pub fn wait_listening(addr: SocketAddr) {
    wait_for(
        &format!("something listening on {addr}"),
        Duration::from_secs(20),
        || TcpStream::connect(addr).is_ok(),
    );
}

/// The value of one metric series on an admin listener, e.g.
/// `flowgate_events_total{outcome="written"}`; 0 if it is not there.
pub fn metric_at(admin: SocketAddr, series: &str) -> f64 {
    get(admin, "/metrics", &[])
        .body
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Every event line in a folder's `.ndjson` files.
pub fn event_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "ndjson") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            out.extend(
                text.lines().map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).expect("whole JSON lines")
                }),
            );
        }
    }
    out
}

/// The click id of the first event from `ip` (as the event has it).
pub fn click_id_from(events: &[serde_json::Value], ip: &str) -> String {
    let event = events.iter().find(|e| e["ip"] == ip);
    let id = event.and_then(|e| e["click_id"].as_str());
    id.unwrap_or_else(|| panic!("no click from {ip} in {events:?}"))
        .to_string()
}
