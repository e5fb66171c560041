//! The shipped Grafana dashboard against a real Prometheus scraping a real flowgate under
//! traffic (humans and bots, a real upstream and a dead one, click events to a real HTTP
//! collector): every PromQL expression of every panel, and every template variable's query,
//! is evaluated through Prometheus' HTTP API with the variables matching everything, and
//! each must return data. The file itself must import as is: a datasource variable, no
//! instance written in. CI installs Debian's `prometheus`; without it the queries are skipped.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;

const DASHBOARD: &str = "config/grafana/flowgate.json";

fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo(DASHBOARD)).expect("the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every panel, rows' collapsed panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// (panel title, expression) of every query target.
fn expressions(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            out.push((title, t["expr"].as_str().expect("expr").to_string()));
        }
    }
    out
}

/// The expression Grafana would send with every variable on "All" (`.*`, the variables'
/// `allValue`) and the interval macros at a width the test's 1 s scrapes fill.
fn filled(d: &Value, expr: &str) -> String {
    let mut e = expr
        .replace("$__rate_interval", "1m")
        .replace("${__rate_interval}", "1m")
        .replace("$__interval", "15s")
        .replace("${__interval}", "15s");
    for v in d["templating"]["list"].as_array().expect("templating") {
        let name = v["name"].as_str().expect("variable name");
        e = e
            .replace(&format!("${{{name}}}"), ".*")
            .replace(&format!("${name}"), ".*");
    }
    assert!(!e.contains('$'), "a variable left in {expr}");
    e
}

/// A query variable's `label_values(selector, label)` as PromQL that lists the values.
fn variable_query(q: &str) -> String {
    let inner = q
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not label_values(...): {q}"));
    let (selector, label) = inner
        .rsplit_once(',')
        .expect("label_values(selector, label)");
    format!("count by ({}) ({})", label.trim(), selector.trim())
}

#[test]
fn the_dashboard_imports_as_is_with_a_datasource_variable_and_no_instance_written_in() {
    let d = dashboard();
    assert!(d["id"].is_null(), "an import creates its own id");
    let vars = d["templating"]["list"].as_array().expect("templating");
    let names: Vec<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    for want in [
        "datasource",
        "job",
        "instance",
        "campaign",
        "flow",
        "route",
        "upstream",
    ] {
        assert!(names.contains(&want), "no ${want} variable: {names:?}");
    }
    let ds = &vars[0];
    assert_eq!(
        (ds["type"].as_str(), ds["query"].as_str()),
        (Some("datasource"), Some("prometheus"))
    );
    for v in &vars[1..] {
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{v}");
        assert_eq!(v["allValue"], ".*", "All must match everything: {v}");
    }
    let mut ids = std::collections::HashSet::new();
    for p in panels(&d) {
        assert!(ids.insert(p["id"].as_i64().expect("id")), "id twice: {p}");
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_i64().unwrap(), g["w"].as_i64().unwrap());
        assert!(x >= 0 && w > 0 && x + w <= 24, "off the grid: {p}");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().expect("targets") {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{t}");
        }
    }
    let text = std::fs::read_to_string(repo(DASHBOARD)).unwrap();
    for written_in in [
        "instance=\"",
        "instance=~\"1",
        "localhost",
        "127.0.0.1",
        ":9180",
    ] {
        assert!(
            !text.contains(written_in),
            "{written_in} written into the dashboard"
        );
    }
    let rows: Vec<&str> = (panels(&d).into_iter())
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    for topic in ["Traffic", "Latency", "events", "Reloads", "Process"] {
        assert!(
            rows.iter().any(|r| r.contains(topic)),
            "no {topic} row: {rows:?}"
        );
    }
}

fn rules(landing: std::net::SocketAddr, dead: u16) -> String {
    format!(
        r#"
upstreams:
  landing: {{ peers: ["{landing}"] }}
  broken: {{ peers: ["127.0.0.1:{dead}"], connect_timeout: 1s }}
routes:
  offer: {{ proxy: {{ upstream: landing }} }}
  pay: {{ proxy: {{ upstream: broken }} }}
  shop: {{ redirect: {{ to: "https://shop.example.com/" }} }}
  safe: {{ respond: {{ body: safe }} }}
fallback: safe
campaigns:
  - id: spring
    flows:
      - {{ name: automation, if: {{ bot: true }}, to: safe }}
      - {{ name: checkout, if: {{ path: /pay }}, to: pay }}
      - {{ name: upload, if: {{ path: /upload }}, to: offer }}
      - {{ name: paid, to: {{ offer: 50, shop: 50 }} }}
"#
    )
}

/// What a mixed crowd sends: browsers to the split, tools to the safe page, an upload, and
/// requests for the upstream that is down.
fn traffic(fg: std::net::SocketAddr, round: usize) {
    let ua = |u: &'static str| [("User-Agent", u)];
    get(fg, &format!("/lp?n={round}"), &ua(CHROME));
    get(fg, "/lp", &ua(IPHONE));
    get(fg, "/lp", &ua("curl/8.5.0"));
    get(fg, "/pay", &ua(CHROME));
    let upload = request_bytes(
        "POST",
        "/upload",
        &[("User-Agent", CHROME), ("Content-Length", "11")],
    );
    let mut body = upload;
    body.extend_from_slice(b"hello=world");
    let mut v = Visitor::connect(fg);
    v.send(&body);
    v.response();
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus_scraping_flowgate() {
    let d = dashboard();
    let Some(bin) = tool("prometheus") else {
        return;
    };
    let landing = Upstream::start("landing");
    let collector = Upstream::start("collector");
    let extra = format!(
        "events: {{ sink: http, http: {{ url: \"http://{}/\", spool_dir: spool, retries: 1, timeout: 2s }}, batch: {{ max_wait: 100ms }} }}\n\
         intel:\n  country: {}\n  lists: {{ datacenter: {} }}\n",
        collector.addr,
        data("maxmind/GeoIP2-Country-Test.mmdb").display(),
        data("ip-lists/datacenter-ipv4.txt").display(),
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = rules(landing.addr, free_port());
    let process = spawn(&setup_with_events(dir.path(), &rules, &extra));
    let fg = Flowgate {
        addr: process.addr(),
        admin: process.admin(),
        dir,
        process,
    };
    traffic(fg.addr, 0);
    // Events reach the collector: the sink's latency has observations.
    wait_for("a batch sent", Duration::from_secs(10), || {
        fg.metric(r#"flowgate_events_total{outcome="sent"}"#) >= 5.0
    });

    let exposition = promtool_accepts(fg.metrics());
    for series in [
        r#"flowgate_requests_total{campaign="spring",flow="automation",route="safe",status_class="2xx",visitor="bot"} 1"#,
        r#"flowgate_requests_total{campaign="spring",flow="automation",route="safe",status_class="2xx",visitor="verified_crawler"} 0"#,
        r#"flowgate_requests_total{campaign="spring",flow="checkout",route="pay",status_class="5xx",visitor="human"} 1"#,
        r#"flowgate_upstream_errors_total{kind="connect",upstream="broken"} 1"#,
        r#"flowgate_bytes_total{direction="in"} 11"#,
    ] {
        assert!(
            exposition.contains(series),
            "{series} missing:\n{exposition}"
        );
    }
    assert!(fg.metric(r#"flowgate_bytes_total{direction="out"}"#) > 0.0);
    assert!(
        fg.metric(r#"flowgate_upstream_request_duration_seconds_count{upstream="landing"}"#) >= 1.0
    );

    // Traffic keeps coming while Prometheus scrapes, so every rate has something to show.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (stop, addr) = (stop.clone(), fg.addr);
        std::thread::spawn(move || {
            let mut round = 1;
            while !stop.load(Ordering::Relaxed) {
                traffic(addr, round);
                round += 1;
                pace(Duration::from_millis(50));
            }
        })
    };
    let prom = Prometheus::start(&bin, fg.admin);
    // Two scrapes with traffic between them in a 1 m window: what `rate` needs.
    wait_for("two scrapes with traffic", Duration::from_secs(60), || {
        prom.query("sum(rate(flowgate_requests_total[1m])) > 0")
            .is_ok_and(|r| !r.is_empty())
    });
    let mut empty = Vec::new();
    for (title, expr) in expressions(&d) {
        let q = filled(&d, &expr);
        match prom.query(&q) {
            Ok(r) if r.is_empty() => empty.push(format!("{title}: {q}")),
            Ok(_) => {}
            Err(e) => panic!("{title}: {q}: {e}"),
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        let Some(q) = v["query"]["query"].as_str() else {
            continue;
        };
        let q = filled(&d, &variable_query(q));
        match prom.query(&q) {
            Ok(r) if r.is_empty() => empty.push(format!("variable {}: {q}", v["name"])),
            Ok(_) => {}
            Err(e) => panic!("variable {}: {q}: {e}", v["name"]),
        }
    }
    // The numbers mean what the panels say: one visitor in five is a bot, and every request
    // sent to the upstream that is down fails.
    let value = |q: &str| -> Vec<(String, f64)> {
        let r = prom.query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        (r.iter())
            .map(|s| {
                let label = s["metric"].as_object().map(|m| {
                    m.values()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                });
                let v = s["value"][1].as_str().and_then(|v| v.parse().ok());
                (label.unwrap_or_default(), v.unwrap_or(f64::NAN))
            })
            .collect()
    };
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    assert!(
        empty.is_empty(),
        "queries without data:\n{}",
        empty.join("\n")
    );
    let bots = value(
        r#"sum by (campaign) (increase(flowgate_requests_total{visitor!="human"}[5m])) / sum by (campaign) (increase(flowgate_requests_total[5m]))"#,
    );
    let (campaign, share) = &bots[0];
    assert_eq!(campaign, "spring");
    assert!(
        (0.1..0.3).contains(share),
        "bot share {share}, expected 1/5"
    );
    let ratio = value(
        r#"sum by (upstream) (increase(flowgate_upstream_errors_total[5m])) / (sum by (upstream) (increase(flowgate_upstream_errors_total[5m])) + sum by (upstream) (increase(flowgate_upstream_request_duration_seconds_count[5m])))"#,
    );
    let mut ratio: Vec<(String, f64)> = ratio;
    ratio.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(ratio, [("broken".into(), 1.0), ("landing".into(), 0.0)]);
}
