//! The operator's stories, end to end: the flowgate binary in front of a real upstream.

mod common;

use std::time::Duration;

use common::*;

fn rules(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
upstreams:
  landing: {{ peers: ["{upstream}"], host: landing.internal, connect_timeout: 1s, read_timeout: 2s }}
routes:
  offer: {{ proxy: {{ upstream: landing, path: /offer/ }} }}
  safe:  {{ proxy: {{ upstream: landing, path: /safe }} }}
  shop:  {{ redirect: {{ to: "https://shop.example.com/go?cid={{click_id}}&c={{country}}&s={{param:sub1}}", status: 302, keep_query: false }} }}
  gone:  {{ respond: {{ status: 410, body: "gone", content_type: text/plain }} }}
campaigns:
  - id: spring
    match: {{ host: promo.example.com, path_prefix: / }}
    flows:
      - name: automation
        if: {{ any: [ {{ bot: true }}, {{ ip_list: [datacenter] }} ] }}
        to: safe
      - name: retired
        if: {{ path: /old/ }}
        to: gone
      - name: paid
        if: {{ all: [ {{ param: {{ gclid: present }} }}, {{ param: {{ sub1: absent }} }} ] }}
        to: offer
      - name: affiliates
        if: {{ param: {{ sub1: present }} }}
        to: shop
      - name: geo
        if: {{ country: [GB] }}
        to: offer
      - name: network
        if: {{ asn: 1221 }}
        to: offer
      - name: default
        to: safe
"#
    )
}

fn intel() -> String {
    format!(
        "intel:\n  country: {}\n  asn: {}\n  lists: {{ datacenter: {} }}\n",
        data("maxmind/GeoIP2-Country-Test.mmdb").display(),
        data("maxmind/GeoLite2-ASN-Test.mmdb").display(),
        data("ip-lists/datacenter-ipv4.txt").display(),
    )
}

#[test]
fn a_browser_gets_the_offer_and_a_tool_gets_the_safe_page() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start(&intel(), &rules(up.addr));

    let r = fg.get("/lp?gclid=abc", &[("User-Agent", CHROME)]);
    assert_eq!(r.status, 200);
    let seen = json(&r.body);
    assert_eq!(seen["target"], "/offer/lp?gclid=abc");
    assert_eq!(seen["headers"]["host"], "landing.internal");
    assert_eq!(seen["headers"]["x-real-ip"], "127.0.0.1");
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");
    let click_id = seen["headers"]["x-click-id"].as_str().unwrap();
    assert_eq!(click_id.len(), 36, "a UUID: {click_id}");
    assert_eq!(&click_id[14..15], "7", "UUIDv7: {click_id}");

    let r = fg.get("/lp?gclid=abc", &[("User-Agent", "curl/8.5.0")]);
    assert_eq!(json(&r.body)["target"], "/safe/lp?gclid=abc");
    let r = fg.get("/lp?gclid=abc", &[]);
    assert_eq!(
        json(&r.body)["target"],
        "/safe/lp?gclid=abc",
        "no user agent is a bot"
    );
}

#[test]
fn country_and_asn_come_from_the_maxmind_databases() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start(&intel(), &rules(up.addr));
    // 81.2.69.142 is located in GB (registered in US): location wins.
    let r = fg.get(
        "/",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "81.2.69.142")],
    );
    assert_eq!(json(&r.body)["target"], "/offer/");
    // 216.160.83.56 is in the US: not targeted.
    let r = fg.get(
        "/",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "216.160.83.56")],
    );
    assert_eq!(json(&r.body)["target"], "/safe/");
    // 1.128.0.1 belongs to AS1221.
    let r = fg.get(
        "/",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "1.128.0.1")],
    );
    assert_eq!(json(&r.body)["target"], "/offer/");
    assert_eq!(json(&r.body)["headers"]["x-real-ip"], "1.128.0.1");

    let events = fg.events(3);
    let gb = events.iter().find(|e| e["ip"] == "81.2.69.142").unwrap();
    assert_eq!(gb["country"], "GB");
    assert_eq!(gb["flow"], "geo");
    let au = events.iter().find(|e| e["ip"] == "1.128.0.1").unwrap();
    assert_eq!(au["asn"], 1221);
    assert_eq!(au["as_org"], "Telstra Pty Ltd");
    assert_eq!(au["flow"], "network");
}

#[test]
fn a_visitor_from_a_datacenter_gets_the_safe_page() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start(&intel(), &rules(up.addr));
    // 1.12.0.0/14 is in the datacenter list.
    let r = fg.get(
        "/?gclid=x",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "1.13.2.3")],
    );
    assert_eq!(json(&r.body)["target"], "/safe/?gclid=x");
    let ev = fg.events(1);
    assert_eq!(ev[0]["ip_lists"], serde_json::json!(["datacenter"]));
    assert_eq!(ev[0]["flow"], "automation");
}

#[test]
fn forwarding_headers_count_only_from_trusted_proxies() {
    let up = Upstream::start("landing");
    let trusted_elsewhere = format!("{}trusted_proxies: [\"10.0.0.0/8\"]\n", intel());
    let fg = Flowgate::start(&trusted_elsewhere, &rules(up.addr));
    let r = fg.get(
        "/",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "81.2.69.142")],
    );
    let seen = json(&r.body);
    assert_eq!(
        seen["target"], "/safe/",
        "the spoofed GB address is ignored"
    );
    assert_eq!(seen["headers"]["x-real-ip"], "127.0.0.1");
    assert_eq!(
        seen["headers"]["x-forwarded-for"], "127.0.0.1",
        "the visitor's chain is replaced"
    );

    let fg = Flowgate::start(&intel(), &rules(up.addr));
    let r = fg.get(
        "/",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "81.2.69.142")],
    );
    let seen = json(&r.body);
    assert_eq!(seen["target"], "/offer/");
    assert_eq!(seen["headers"]["x-forwarded-for"], "81.2.69.142, 127.0.0.1");
    // Garbage from a trusted peer falls back to the peer's own address.
    let r = fg.get(
        "/",
        &[
            ("User-Agent", CHROME),
            ("X-Forwarded-For", "81.2.69.142, <script>"),
        ],
    );
    assert_eq!(json(&r.body)["headers"]["x-real-ip"], "127.0.0.1");
}

#[test]
fn redirect_macros_are_escaped_so_no_header_can_be_injected() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start(&intel(), &rules(up.addr));
    let r = fg.get(
        "/?sub1=%0d%0aSet-Cookie:%20evil=1&x=%22",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "81.2.69.142")],
    );
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap();
    assert!(
        location.starts_with("https://shop.example.com/go?cid=")
            && location.ends_with("&c=GB&s=%0D%0ASet-Cookie%3A%20evil%3D1"),
        "{location}"
    );
    // The only cookie is flowgate's own visitor cookie, never one a parameter wrote.
    let cookies: Vec<_> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .collect();
    assert!(
        cookies
            .iter()
            .all(|(_, v)| v.starts_with("fg_uv=") && !v.contains("evil")),
        "{cookies:?}"
    );
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    let ev = fg.events(1);
    let cid = ev[0]["click_id"].as_str().unwrap();
    assert!(location.contains(cid), "the event's click id is in the URL");
    assert_eq!(ev[0]["action"], "redirect");
    assert_eq!(ev[0]["status"], 302);
}

#[test]
fn a_weighted_split_is_fair_and_sticky_per_visitor() {
    let up = Upstream::start("landing");
    let rules = format!(
        r#"
upstreams: {{ landing: {{ peers: ["{}"] }} }}
routes:
  a: {{ proxy: {{ upstream: landing, path: /a }} }}
  b: {{ proxy: {{ upstream: landing, path: /b }} }}
campaigns:
  - id: ab
    flows:
      - name: split
        to: {{ a: 50, b: 50 }}
"#,
        up.addr
    );
    let fg = Flowgate::start("", &rules);
    let mut a = 0;
    for i in 0..300 {
        let ip = format!("198.51.{}.{}", i / 250, i % 250 + 1);
        let first = json(
            &fg.get("/", &[("User-Agent", CHROME), ("X-Forwarded-For", &ip)])
                .body,
        );
        let again = json(
            &fg.get("/", &[("User-Agent", CHROME), ("X-Forwarded-For", &ip)])
                .body,
        );
        assert_eq!(
            first["target"], again["target"],
            "visitor {ip} kept its branch"
        );
        if first["target"] == "/a/" {
            a += 1;
        }
    }
    assert!((120..=180).contains(&a), "a got {a} of 300");
}

#[test]
fn a_dead_upstream_answers_502_and_flowgate_keeps_serving() {
    let dead = free_port();
    let slow = Upstream::start_with_delay("slow", Duration::from_secs(5));
    let rules = format!(
        r#"
upstreams:
  dead: {{ peers: ["127.0.0.1:{dead}"] }}
  slow: {{ peers: ["{}"], read_timeout: 500ms }}
routes:
  dead: {{ proxy: {{ upstream: dead }} }}
  slow: {{ proxy: {{ upstream: slow }} }}
  ok: {{ respond: {{ body: "still here" }} }}
campaigns:
  - id: c
    flows:
      - {{ name: dead, if: {{ path: /dead }}, to: dead }}
      - {{ name: slow, if: {{ path: /slow }}, to: slow }}
      - {{ name: rest, to: ok }}
"#,
        slow.addr
    );
    let fg = Flowgate::start("", &rules);
    let r = fg.get("/dead", &[("User-Agent", CHROME)]);
    assert_eq!(r.status, 502);
    assert!(r.body.contains("502"), "{}", r.body);
    let r = fg.get("/slow", &[("User-Agent", CHROME)]);
    assert_eq!(r.status, 504);
    let r = fg.get("/", &[("User-Agent", CHROME)]);
    assert_eq!((r.status, r.body.as_str()), (200, "still here"));

    assert_eq!(
        fg.metric(r#"flowgate_upstream_errors_total{kind="connect",upstream="dead"}"#),
        1.0
    );
    assert_eq!(
        fg.metric(r#"flowgate_upstream_errors_total{kind="timeout",upstream="slow"}"#),
        1.0
    );
    let events = fg.events(3);
    let statuses: Vec<_> = events
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![502, 504, 200]);
    assert_eq!(events[0]["upstream"], format!("127.0.0.1:{dead}"));
}

#[test]
fn every_request_leaves_one_event_with_the_schema_fields() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start(
        &format!("{}privacy: {{ ip: truncate }}\n", intel()),
        &rules(up.addr),
    );
    fg.get(
        "/lp?gclid=g1&utm_source=fb&secret=x",
        &[
            ("User-Agent", IPHONE),
            ("Referer", "https://news.example/"),
            ("Accept-Language", "de-CH,de;q=0.9"),
        ],
    );
    fg.get("/old/page", &[("User-Agent", CHROME)]);
    fg.get("/", &[("User-Agent", "curl/8")]);
    let events = fg.events(3);
    assert_eq!(events.len(), 3);
    let fields = [
        "type",
        "ts",
        "click_id",
        "campaign",
        "flow",
        "route",
        "action",
        "status",
        "ip",
        "country",
        "asn",
        "as_org",
        "ip_lists",
        "anonymous",
        "bot",
        "device",
        "ua",
        "referer",
        "host",
        "path",
        "query",
        "lang",
        "upstream",
        "duration_ms",
    ];
    // `unique` is written only when the rules ask for state (`tests/state.rs`); these do not.
    for e in &events {
        for f in fields {
            assert!(e.get(f).is_some(), "field {f} in {e}");
        }
        assert_eq!(
            e.as_object().unwrap().len(),
            fields.len(),
            "no other fields: {e}"
        );
    }
    let first = &events[0];
    assert_eq!(first["type"], "click");
    assert_eq!(first["route"], "offer");
    assert_eq!(first["action"], "proxy");
    assert_eq!(first["device"], "mobile");
    assert_eq!(first["ip"], "127.0.0.0", "privacy: truncate");
    assert_eq!(first["lang"], "de");
    assert_eq!(first["referer"], "https://news.example/");
    assert_eq!(
        first["query"],
        serde_json::json!({"gclid": "g1", "utm_source": "fb"})
    );
    assert!(first["ts"].as_str().unwrap().ends_with('Z'));
    assert_eq!(events[1]["route"], "gone");
    assert_eq!(events[1]["status"], 410);
    assert_eq!(events[1]["action"], "respond");
    assert_eq!(events[2]["bot"], true);
}

#[test]
fn metrics_count_requests_by_campaign_flow_route_visitor_and_status_class() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start(&intel(), &rules(up.addr));
    for _ in 0..3 {
        fg.get("/", &[("User-Agent", "curl/8")]);
    }
    fg.get("/old/", &[("User-Agent", CHROME)]);
    // Counters move in the logging phase, before the request's event is written.
    fg.events(4);
    let series = r#"flowgate_requests_total{campaign="spring",flow="automation",route="safe",status_class="2xx",visitor="bot"}"#;
    assert_eq!(fg.metric(series), 3.0);
    let gone = r#"flowgate_requests_total{campaign="spring",flow="retired",route="gone",status_class="4xx","#;
    assert_eq!(fg.metric(&format!(r#"{gone}visitor="human"}}"#)), 1.0);
    assert_eq!(fg.metric(&format!(r#"{gone}visitor="bot"}}"#)), 0.0);
    let safe = r#"flowgate_request_duration_seconds_count{route="safe"}"#;
    assert_eq!(fg.metric(safe), 3.0);
    let gone = r#"flowgate_request_duration_seconds_count{route="gone"}"#;
    assert_eq!(fg.metric(gone), 1.0);
    let upstream = r#"flowgate_upstream_request_duration_seconds_count{upstream="landing"}"#;
    assert_eq!(fg.metric(upstream), 3.0);
    // `written` is counted just after the lines reach the file.
    wait_for("written counted", Duration::from_secs(5), || {
        fg.metric(r#"flowgate_events_total{outcome="written"}"#) == 4.0
    });
    let text = fg.metrics();
    let info = text.lines().find(|l| l.starts_with("flowgate_build_info{"));
    let info = info.expect("flowgate_build_info");
    assert!(
        info.contains(r#"version="0.1.0""#) && info.ends_with(" 1"),
        "{info}"
    );
    assert!(
        !info.contains(r#"commit="""#),
        "the commit is named: {info}"
    );
    assert_eq!(
        fg.metric(r#"flowgate_intel_entries{source="datacenter"}"#),
        42566.0
    );
    // A database's tree nodes are not networks: they have a metric of their own.
    let text = fg.metrics();
    assert!(
        !text.contains(r#"flowgate_intel_entries{source="country"}"#),
        "{text}"
    );
    assert!(fg.metric(r#"flowgate_intel_database_nodes{source="country"}"#) > 0.0);
    assert_eq!(get(fg.admin, "/healthz", &[]).status, 200);
    assert_eq!(get(fg.admin, "/readyz", &[]).status, 200);
}

#[test]
fn requests_no_campaign_matches_get_the_fallback() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start(&intel(), &rules(up.addr));
    let r = fg.get(
        "/",
        &[("Host", "other.example.org"), ("User-Agent", CHROME)],
    );
    assert_eq!(r.status, 404);
    let ev = fg.events(1);
    assert_eq!(ev[0]["route"], "not_found");
    assert!(ev[0]["campaign"].is_null());
}

#[test]
fn sighup_reloads_rules_and_a_bad_change_keeps_the_old_ones() {
    let fg = Flowgate::start("", "routes: { r: { respond: { body: one } } }\ncampaigns: [ { id: c, flows: [ { name: f, to: r } ] } ]\n");
    assert_eq!(fg.get("/", &[]).body, "one");
    let main = fg.rules_dir().join("main.yaml");
    std::fs::write(&main, "routes: { r: { respond: { body: two } } }\ncampaigns: [ { id: c, flows: [ { name: f, to: r } ] } ]\n").unwrap();
    fg.signal("HUP");
    wait_for("reload", Duration::from_secs(5), || {
        fg.get("/", &[]).body == "two"
    });
    // SIGHUP and the file watcher both see the change: one or two new snapshots of it.
    assert!(fg.metric("flowgate_snapshot_generation") >= 2.0);
    std::fs::write(&main, "routes: { r: { respond: { body: three } } }\ncampaigns: [ { id: c, flows: [ { name: f, to: nowhere } ] } ]\n").unwrap();
    fg.signal("HUP");
    // The file watcher may refuse the same change too: at least one refusal.
    wait_for("refused reload", Duration::from_secs(5), || {
        fg.metric(r#"flowgate_reloads_total{outcome="error"}"#) >= 1.0
    });
    assert_eq!(fg.get("/", &[]).body, "two");
    assert!(fg.metric("flowgate_snapshot_generation") <= 3.0);
}

#[test]
fn a_visitor_over_the_rate_is_sent_where_the_rules_say_and_counted() {
    let rules = r#"
routes:
  page: { respond: { body: page } }
  slow_down: { respond: { status: 429, body: "slow down" } }
campaigns:
  - id: c
    flows:
      - { name: flood, if: { rate: { per: ip, max: 3, window: 10s } }, to: slow_down }
      - { name: rest, to: page }
"#;
    let fg = Flowgate::start("", rules);
    let visit = |ip: &str| {
        fg.get("/", &[("User-Agent", CHROME), ("X-Forwarded-For", ip)])
            .status
    };
    let first: Vec<u16> = (0..5).map(|_| visit("203.0.113.5")).collect();
    assert_eq!(first, [200, 200, 200, 429, 429]);
    assert_eq!(
        visit("203.0.113.6"),
        200,
        "another visitor has its own rate"
    );
    let events = fg.events(6);
    let limited: Vec<bool> = events
        .iter()
        .map(|e| e["rate_limited"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(limited, [false, false, false, true, true, false]);
    assert_eq!(
        fg.metric(r#"flowgate_rate_limited_total{campaign="c"}"#),
        2.0
    );
}
