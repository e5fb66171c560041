//! The shipped alert rules against a real Prometheus: `promtool` checks them and runs their
//! unit tests, then a Prometheus started here scrapes a real flowgate under traffic and
//! evaluates every alert expression through its HTTP API. `promtool check metrics` reads
//! flowgate's exposition. CI installs Debian's `prometheus`; elsewhere, without it, these
//! tests say so and pass.

mod common;

use std::time::Duration;

use common::*;

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

    let exposition = promtool_accepts(fg.metrics());
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
