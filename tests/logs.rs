//! What an operator reads in flowgate's log: a start line that names every address, JSON
//! lines a collector can parse when `log.format` is `json`, and no error lines for what is
//! normal (a visitor hanging up mid-request, an upgrade waiting for the old sockets).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `flowgate run` on the harness's config plus `extra`, logging at `info`.
fn start(dir: &Path, extra: &str, rules: &str) -> Process {
    let config = write_setup(dir, extra, rules);
    Process::start(command(&config, false), "info")
}

/// Waits for the process to exit after SIGTERM, so every line it wrote has been read.
fn stop(p: &mut Process) -> Vec<String> {
    p.signal("TERM");
    assert!(p.wait().success(), "flowgate exits cleanly on SIGTERM");
    p.lines()
}

fn above_info(lines: &[String]) -> Vec<&String> {
    let loud = [" ERROR ", " WARN "];
    (lines.iter())
        .filter(|l| loud.iter().any(|level| l.contains(level)))
        .collect()
}

#[test]
fn the_start_line_names_the_listeners_and_the_admin_address() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), "", &page_rules("hi"));
    let (addr, admin) = (p.addr(), p.admin());
    let (line, _) = p.wait_log(0, &["serving on"]);
    let expected = format!("flowgate {VERSION} serving on {addr}, admin on {admin}");
    assert!(
        line.ends_with(&format!("flowgate::serve] {expected}")),
        "{line}"
    );
}

#[test]
fn the_start_line_says_admin_off_when_it_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), "", &page_rules("hi"));
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("admin: 127.0.0.1:0", "admin: null");
    std::fs::write(&config, text).unwrap();
    let p = Process::start(command(&config, false), "info");
    let addr = p.addr();
    let (line, _) = p.wait_log(0, &["serving on"]);
    assert!(
        line.ends_with(&format!("serving on {addr}, admin off")),
        "{line}"
    );
}

#[test]
fn with_format_json_every_line_is_one_json_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = start(dir.path(), "log: { format: json }\n", &page_rules("hi"));
    let (addr, admin) = (p.addr(), p.admin());
    assert_eq!(get(addr, "/", &[]).body, "hi");
    // A reload that fails logs a multi-part message with quotes: it must stay one line.
    std::fs::write(dir.path().join("rules/main.yaml"), "routes: { a: \"\n").unwrap();
    p.signal("HUP");
    p.wait_log(0, &["\"level\":\"ERROR\""]);
    let lines = stop(&mut p);
    let objects: Vec<serde_json::Value> = (lines.iter())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for o in &objects {
        let keys: Vec<&String> = o.as_object().expect("an object").keys().collect();
        assert_eq!(keys.len(), 4, "{o}");
        for key in ["ts", "level", "target", "msg"] {
            assert!(o[key].is_string(), "{key} in {o}");
        }
        let ts = o["ts"].as_str().unwrap_or_default();
        // 2026-12-01T15:00:00.123Z
        assert_eq!((ts.len(), &ts[10..11], &ts[19..20]), (24, "T", "."), "{ts}");
        assert!(ts.ends_with('Z'), "{ts}");
    }
    let start = (objects.iter())
        .find(|o| o["target"] == "flowgate::serve")
        .expect("a start line");
    assert_eq!(start["level"], "INFO");
    let expected = format!("flowgate {VERSION} serving on {addr}, admin on {admin}");
    assert_eq!(start["msg"], expected.as_str());
    assert!(lines.iter().any(|l| l.starts_with("{\"ts\":")), "ts first");
}

#[test]
fn a_visitor_hanging_up_mid_request_logs_nothing_above_info() {
    let slow = Upstream::start_with_delay("slow", Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let mut p = start(dir.path(), "", &proxy_rules(slow.addr, "5s"));
    let (addr, admin) = (p.addr(), p.admin());
    // Gone while the upstream is still answering.
    let mut v = Visitor::connect(addr);
    v.send(&request_bytes("GET", "/wait", &[]));
    wait_for("the upstream has the request", START, || {
        slow.hits.load(std::sync::atomic::Ordering::SeqCst) == 1
    });
    drop(v);
    // Gone halfway through sending a body.
    let mut v = Visitor::connect(addr);
    v.send(&request_bytes(
        "POST",
        "/form",
        &[("Content-Length", "100000")],
    ));
    v.send(b"name=half");
    drop(v);
    // Gone halfway through the request head.
    let mut v = Visitor::connect(addr);
    v.send(b"GET /x HTTP/1.1\r\nHo");
    drop(v);
    wait_for("every connection closed", START, || {
        metric_at(admin, "flowgate_connections_open") == 0.0
    });
    let lines = stop(&mut p);
    assert!(
        lines.iter().any(|l| l.contains("serving on")),
        "logged at info"
    );
    assert_eq!(above_info(&lines), Vec::<&String>::new());
}

#[test]
fn an_upgrade_waiting_for_the_old_sockets_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = start(dir.path(), "", &page_rules("hi"));
    let addr = old.addr();
    let config = dir.path().join("flowgate.yaml");
    let waiting = "info,pingora_core::server::transfer_fd=debug";
    let mut new = Process::start(command(&config, true), waiting);
    let (line, _) = new.wait_log(0, &["No incoming socket transfer"]);
    assert!(line.contains(" DEBUG "), "{line}");
    old.signal("QUIT");
    assert_eq!(new.addr(), addr, "the new process took the socket");
    assert!(old.wait().success(), "the old process drains and exits");
    assert_eq!(get(addr, "/", &[]).body, "hi");
    let lines = [old.lines(), stop(&mut new)].concat();
    assert_eq!(above_info(&lines), Vec::<&String>::new());
}
