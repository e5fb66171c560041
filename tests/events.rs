//! Click events delivered without loss: the HTTP sink against a real collector that goes
//! down and comes back, the spool, file rotation and retention, privacy, erasure, postbacks.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const UP: u8 = 0;
const UNAVAILABLE: u8 = 1; // 503
const REFUSING: u8 = 2; // 400: this batch will never be accepted

/// A real HTTP collector: keeps every NDJSON line it accepts (gzip or not).
struct Collector {
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
    mode: Arc<AtomicU8>,
    posts: Arc<AtomicUsize>,
    headers: Arc<Mutex<Vec<(String, String)>>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = Collector {
            addr: listener.local_addr().unwrap(),
            lines: Arc::default(),
            mode: Arc::default(),
            posts: Arc::default(),
            headers: Arc::default(),
        };
        let (lines, mode, posts, headers) = (
            c.lines.clone(),
            c.mode.clone(),
            c.posts.clone(),
            c.headers.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (lines, mode, posts, headers) =
                    (lines.clone(), mode.clone(), posts.clone(), headers.clone());
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut w = conn;
                    while let Some(post) = read_request(&mut r) {
                        let gzip = post
                            .headers
                            .get("content-encoding")
                            .is_some_and(|v| v == "gzip");
                        let mut body = post.body;
                        posts.fetch_add(1, Ordering::SeqCst);
                        *headers.lock().unwrap() = post.headers.into_iter().collect();
                        let status = match mode.load(Ordering::SeqCst) {
                            UP => {
                                if gzip {
                                    let mut out = Vec::new();
                                    flate2::read::GzDecoder::new(&body[..])
                                        .read_to_end(&mut out)
                                        .unwrap();
                                    body = out;
                                }
                                let mut l = lines.lock().unwrap();
                                for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                                    l.push(serde_json::from_slice(line).unwrap());
                                }
                                "200 OK"
                            }
                            UNAVAILABLE => "503 Service Unavailable",
                            _ => "400 Bad Request",
                        };
                        let resp = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                        if w.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        c
    }

    fn sub_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| e["query"]["sub_id"].as_str().map(String::from))
            .collect();
        v.sort();
        v
    }
}

const RULES: &str = "routes: { page: { respond: { body: ok } } }\ncampaigns: [ { id: c, flows: [ { name: f, to: page } ] } ]\n";

fn http_sink(collector: &Collector, dir: &std::path::Path, extra: &str) -> String {
    format!(
        "events: {{ sink: http, http: {{ url: \"http://{}/?query=INSERT INTO t FORMAT JSONEachRow\", spool_dir: {}, retries: 1, timeout: 2s {extra} }}, batch: {{ max_wait: 100ms }} }}\n",
        collector.addr,
        dir.join("spool").display()
    )
}

fn visit(addr: SocketAddr, range: std::ops::Range<u32>) -> Vec<String> {
    range
        .map(|i| {
            let id = format!("{i:04}");
            assert_eq!(
                get(addr, &format!("/?sub_id={id}"), &[("User-Agent", CHROME)]).status,
                200
            );
            id
        })
        .collect()
}

#[test]
fn the_http_sink_posts_gzipped_batches_with_secret_headers() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "Bearer s3cret\n").unwrap();
    let extra = format!(
        ", gzip: true, headers: {{ Authorization: {{ file: {} }} }}",
        dir.path().join("token").display()
    );
    let config = setup_with_events(
        dir.path(),
        RULES,
        &http_sink(&collector, dir.path(), &extra),
    );
    let fg = spawn(&config);
    let (addr, admin) = (fg.addr(), fg.admin());
    let sent = visit(addr, 0..5);
    wait_for("delivered", Duration::from_secs(5), || {
        collector.sub_ids() == sent
    });
    let headers = collector.headers.lock().unwrap().clone();
    assert!(
        headers.contains(&("authorization".into(), "Bearer s3cret".into())),
        "{headers:?}"
    );
    assert!(headers.contains(&("content-type".into(), "application/x-ndjson".into())));
    // Counted once the collector has answered, a moment after it stored the lines.
    wait_for("counted as sent", Duration::from_secs(5), || {
        metric_at(admin, r#"flowgate_events_total{outcome="sent"}"#) == 5.0
    });
}

#[test]
fn a_collector_outage_spools_events_and_replays_them_in_order() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let config = setup_with_events(dir.path(), RULES, &http_sink(&collector, dir.path(), ""));
    let fg = spawn(&config);
    let (addr, admin) = (fg.addr(), fg.admin());
    let mut sent = visit(addr, 0..3);
    wait_for("first batch", Duration::from_secs(5), || {
        collector.sub_ids().len() == 3
    });

    collector.mode.store(UNAVAILABLE, Ordering::SeqCst);
    sent.extend(visit(addr, 3..40));
    wait_for("spooled", Duration::from_secs(5), || {
        metric_at(admin, r#"flowgate_events_total{outcome="spooled"}"#) == 37.0
    });
    wait_for("spool size published", Duration::from_secs(5), || {
        metric_at(admin, "flowgate_event_spool_bytes") > 0.0
    });
    assert_eq!(collector.sub_ids().len(), 3, "nothing accepted while down");

    collector.mode.store(UP, Ordering::SeqCst);
    sent.extend(visit(addr, 40..45));
    wait_for("replayed", Duration::from_secs(40), || {
        collector.sub_ids() == sent
    });
    // Order is kept: the outage's events arrive before anything sent after it.
    let order: Vec<String> = collector
        .lines
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["query"]["sub_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, sent);
    wait_for(
        "counted as replayed or sent",
        Duration::from_secs(5),
        || {
            metric_at(admin, r#"flowgate_events_total{outcome="replayed"}"#)
                + metric_at(admin, r#"flowgate_events_total{outcome="sent"}"#)
                == 45.0
        },
    );
    wait_for("spool empty", Duration::from_secs(5), || {
        metric_at(admin, "flowgate_event_spool_bytes") == 0.0
    });
}

#[test]
fn what_is_undelivered_at_shutdown_is_spooled_and_sent_by_the_next_run() {
    let collector = Collector::start();
    collector.mode.store(UNAVAILABLE, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let config = setup_with_events(dir.path(), RULES, &http_sink(&collector, dir.path(), ""));
    let mut fg = spawn(&config);
    let sent = visit(fg.addr(), 0..10);
    fg.signal("TERM");
    assert!(fg.wait().success());
    let spooled: usize = event_lines(&dir.path().join("spool")).len();
    assert_eq!(spooled, 10, "every event is on disk after shutdown");

    collector.mode.store(UP, Ordering::SeqCst);
    let _fg = spawn(&config);
    wait_for("replayed after restart", Duration::from_secs(10), || {
        collector.sub_ids() == sent
    });
}

#[test]
fn a_batch_the_collector_refuses_is_kept_aside_not_retried() {
    let collector = Collector::start();
    collector.mode.store(REFUSING, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let config = setup_with_events(dir.path(), RULES, &http_sink(&collector, dir.path(), ""));
    let fg = spawn(&config);
    let (addr, admin) = (fg.addr(), fg.admin());
    visit(addr, 0..4);
    wait_for("refused", Duration::from_secs(5), || {
        metric_at(admin, r#"flowgate_events_total{outcome="failed"}"#) == 4.0
    });
    let posts = collector.posts.load(Ordering::SeqCst);
    // The sink sends one batch at a time, in order: had the refused ones been kept for
    // another try, it would post them again before the next batch.
    visit(addr, 4..5);
    wait_for("the next batch refused", Duration::from_secs(5), || {
        metric_at(admin, r#"flowgate_events_total{outcome="failed"}"#) == 5.0
    });
    let since = collector.posts.load(Ordering::SeqCst) - posts;
    assert_eq!(since, 1, "only the next batch was posted: not retried");
    assert_eq!(
        event_lines(&dir.path().join("spool/rejected")).len(),
        5,
        "kept for the operator"
    );
}

#[test]
fn event_files_rotate_by_size_and_old_ones_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    std::fs::create_dir_all(&events).unwrap();
    let old = events.join("clicks-2020-01-01-1-0.ndjson");
    std::fs::write(&old, "{}\n").unwrap();
    let f = std::fs::File::options().write(true).open(&old).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(40 * 86_400))
        .unwrap();
    let config = setup_with_events(
        dir.path(),
        RULES,
        "events: { file: { dir: events, rotate_bytes: 2KiB, retain: 30d }, batch: { max_events: 5, max_wait: 50ms } }\n",
    );
    let fg = spawn(&config);
    let addr = fg.addr();
    let sent = visit(addr, 0..40);
    wait_for("all written", Duration::from_secs(5), || {
        event_lines(&events).len() == 40
    });
    wait_for("retention", Duration::from_secs(5), || !old.exists());
    let files: Vec<_> = std::fs::read_dir(&events)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(files.len() >= 4, "rotated at 2 KiB: {files:?}");
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 2048 + 1024, "{} is {len} bytes", f.display());
    }
    let mut logged: Vec<String> = event_lines(&events)
        .iter()
        .map(|e| e["query"]["sub_id"].as_str().unwrap().to_string())
        .collect();
    logged.sort();
    assert_eq!(logged, sent);
}

#[test]
fn hashed_ips_are_daily_pseudonyms_and_gpc_is_honoured() {
    let fg = Flowgate::start(
        "privacy: { ip: hash, honor_gpc: true, salt_dir: salt }\n",
        RULES,
    );
    fg.get(
        "/",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "203.0.113.7")],
    );
    fg.get(
        "/",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "203.0.113.7")],
    );
    fg.get(
        "/",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "203.0.113.8")],
    );
    fg.get(
        "/",
        &[
            ("User-Agent", CHROME),
            ("X-Forwarded-For", "203.0.113.9"),
            ("Sec-GPC", "1"),
        ],
    );
    let ev = fg.events(4);
    let ips: Vec<&str> = ev.iter().map(|e| e["ip"].as_str().unwrap()).collect();
    assert_eq!(ips[0].len(), 32);
    assert!(ips[0].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(ips[0], ips[1], "one pseudonym per visitor per day");
    assert_ne!(ips[0], ips[2]);
    assert!(
        !ev.iter().any(|e| e.to_string().contains("203.0.113.7")),
        "the address itself never appears"
    );
    assert_eq!(ips[3], "203.0.113.0", "GPC: truncated");
    assert!(ev[3]["ua"].is_null(), "GPC: no user agent");
    assert!(ev[0]["ua"].is_string());
}

#[test]
fn forget_erases_a_visitor_while_flowgate_keeps_writing() {
    let fg = Flowgate::start("", RULES);
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.1"] {
        fg.get("/", &[("User-Agent", CHROME), ("X-Forwarded-For", ip)]);
    }
    let ev = fg.events(3);
    let click = ev[1]["click_id"].as_str().unwrap().to_string();
    let forget = |args: &[&str]| fg.forget(args).trim().to_string();
    assert!(forget(&["--ip", "198.51.100.1"]).starts_with("removed 2 events\n"));
    // The running writer follows the rewritten file: nothing it writes next is lost.
    fg.get(
        "/",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "198.51.100.3")],
    );
    let ev = fg.events(2);
    let ips: Vec<&str> = ev.iter().map(|e| e["ip"].as_str().unwrap()).collect();
    assert_eq!(ips, vec!["198.51.100.2", "198.51.100.3"]);
    assert!(forget(&["--click-id", &click]).starts_with("removed 1 events\n"));
    assert_eq!(fg.events(1).len(), 1);
}

#[test]
fn postbacks_record_conversions_for_their_click() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pb-token"), "t0ken").unwrap();
    let extra = format!(
        "postback: {{ path: /postback, token: {{ file: {} }} }}\n",
        dir.path().join("pb-token").display()
    );
    let fg = Flowgate::start(&extra, RULES);
    fg.get("/", &[("User-Agent", CHROME)]);
    let click = fg.events(1)[0]["click_id"].as_str().unwrap().to_string();
    let ok = fg.get(
        &format!("/postback?click_id={click}&payout=12.5&currency=EUR&status=approved&token=t0ken"),
        &[],
    );
    assert_eq!((ok.status, ok.body.as_str()), (200, "ok\n"));
    assert_eq!(
        fg.get(&format!("/postback?click_id={click}&token=wrong"), &[])
            .status,
        403
    );
    assert_eq!(fg.get("/postback?payout=1&token=t0ken", &[]).status, 400);
    assert_eq!(
        fg.get(
            &format!("/postback?click_id={click}&payout=lots&token=t0ken"),
            &[]
        )
        .status,
        400
    );
    let ev = fg.events(2);
    let conv = ev.iter().find(|e| e["type"] == "conversion").unwrap();
    assert_eq!(conv["click_id"], click.as_str());
    assert_eq!(conv["payout"], 12.5);
    assert_eq!(conv["currency"], "EUR");
    assert_eq!(conv["conversion_status"], "approved");
    assert_eq!(ev.iter().filter(|e| e["type"] == "conversion").count(), 1);
}
