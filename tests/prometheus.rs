//! The shipped alert rules against a real Prometheus: `promtool` checks them and runs their
//! unit tests, then a Prometheus started here scrapes a real flowgate under traffic and
//! evaluates every alert expression through its HTTP API. `promtool check metrics` reads
//! flowgate's exposition. CI installs Debian's `prometheus`; elsewhere, without it, these
//! tests say so and pass.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

const RULES: &str = "config/prometheus/flowgate.rules.yml";
const RULE_TESTS: &str = "config/prometheus/flowgate.rules.test.yml";

fn tool(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin").join(name);
    if path.exists() {
        return Some(path);
    }
    eprintln!("{name} is not installed (apt install prometheus); skipping");
    None
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let Some(bin) = tool("promtool") else {
        return (true, String::new());
    };
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    if let Some(text) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write to promtool");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("promtool runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_alert_rules_are_valid_and_pass_their_unit_tests() {
    let (ok, out) = promtool(
        &["check", "rules", &repo(RULES).display().to_string()],
        None,
    );
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = promtool(
        &["test", "rules", &repo(RULE_TESTS).display().to_string()],
        None,
    );
    assert!(ok, "promtool test rules:\n{out}");
}

/// Every `expr` of the rules file.
fn alert_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo(RULES)).expect("the rules file");
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("the rules file is YAML");
    let mut out = Vec::new();
    for group in doc["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("alert name").to_string();
            out.push((name, rule["expr"].as_str().expect("expr").to_string()));
        }
    }
    out
}

struct Prometheus {
    child: Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(bin: &Path, target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             rule_files: [\"{}\"]\n\
             scrape_configs:\n  - job_name: flowgate\n    static_configs: [ {{ targets: [\"{target}\"] }} ]\n",
            repo(RULES).display()
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        // Prometheus cannot report a port it chose: this one is picked just before it binds.
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The result of an instant query, or why it failed.
    fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let mut q = String::new();
        for b in expr.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => q.push(b as char),
                _ => q.push_str(&format!("%{b:02X}")),
            }
        }
        let body = http_get(self.addr, &format!("/api/v1/query?query={q}"))?;
        let body: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        match body["status"].as_str() {
            Some("success") => Ok(body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default()),
            _ => Err(body.to_string()),
        }
    }
}

/// A GET that reports a refused connection instead of panicking: Prometheus takes a moment
/// to listen.
fn http_get(addr: std::net::SocketAddr, target: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no head")?;
    Ok(
        match head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            true => dechunk(body),
            false => body.to_string(),
        },
    )
}

#[test]
fn prometheus_scrapes_flowgate_and_evaluates_every_alert_expression() {
    let Some(bin) = tool("prometheus") else {
        return;
    };
    let up = Upstream::start("landing");
    let intel = format!(
        "intel:\n  country: {}\n",
        data("maxmind/GeoIP2-Country-Test.mmdb").display()
    );
    let rules = format!(
        "upstreams: {{ landing: {{ peers: [\"{}\"] }} }}\nroutes: {{ offer: {{ proxy: {{ upstream: landing }} }} }}\n\
         campaigns: [ {{ id: c, flows: [ {{ name: f, to: offer }} ] }} ]\n",
        up.addr
    );
    let fg = Flowgate::start(&intel, &rules);
    for _ in 0..20 {
        assert_eq!(fg.get("/lp", &[]).status, 200);
    }

    let exposition = fg.metrics();
    let (ok, out) = promtool(&["check", "metrics"], Some(&exposition));
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}"
    );
    for series in [
        "flowgate_intel_age_seconds{source=\"country\"}",
        "flowgate_last_reload_timestamp_seconds{outcome=\"ok\"}",
        "flowgate_reloads_total{outcome=\"error\"} 0",
        "flowgate_events_total{outcome=\"dropped\"} 0",
        "process_resident_memory_bytes",
    ] {
        assert!(
            exposition.contains(series),
            "{series} missing from:\n{exposition}"
        );
    }

    let prom = Prometheus::start(&bin, fg.admin);
    let scraped = |p: &Prometheus| {
        p.query("up{job=\"flowgate\"} == 1")
            .is_ok_and(|r| !r.is_empty())
    };
    wait_for(
        "prometheus scrapes flowgate",
        Duration::from_secs(60),
        || scraped(&prom),
    );
    for (name, expr) in alert_expressions() {
        let result = prom.query(&expr);
        assert!(result.is_ok(), "{name}: {expr}: {result:?}");
    }
    // Healthy and freshly started: none of the alerts holds (the intel test data is older
    // than its refresh, so that one is left out).
    for (name, expr) in alert_expressions() {
        if name == "FlowgateIntelStale" {
            continue;
        }
        assert_eq!(
            prom.query(&expr),
            Ok(vec![]),
            "{name} holds for a healthy flowgate"
        );
    }
    let requests = prom
        .query("sum(flowgate_requests_total{job=\"flowgate\"})")
        .expect("a query");
    assert_eq!(requests[0]["value"][1].as_str(), Some("20"), "{requests:?}");
}
