//! Click memory end to end, on the real binary with a real lander upstream: the lander's
//! click-through continues its click (by cookie, or `?cid=` without cookies) into the
//! flow's `then` split with the first click's parameters; an unknown click gets the
//! fallback; conversions find their click, count once, and feed conversion caps.

mod common;

use common::*;

fn rules(up: std::net::SocketAddr) -> String {
    format!(
        r#"
upstreams:
  lp: {{ peers: ["{up}"] }}
routes:
  lander: {{ proxy: {{ upstream: lp }} }}
  offer_a: {{ redirect: {{ to: "https://a.example/?cid={{click_id}}&s={{param:sub1}}" }} }}
  offer_b: {{ redirect: {{ to: "https://b.example/?cid={{click_id}}&s={{param:sub1}}" }} }}
  plain: {{ respond: {{ body: "plain" }} }}
  safe: {{ respond: {{ body: "safe" }} }}
fallback: safe
campaigns:
  - id: spring
    match: {{ host: promo.example.com }}
    click_path: /go
    flows:
      - name: no_then
        if: {{ param: {{ via: plain }} }}
        to: lander
      - name: fresh
        to: lander
        then: {{ offer_a: 70, offer_b: 30 }}
"#
    )
}

/// The lander, as the visitor at `ip` reaches it: its click id (the upstream saw it as
/// `X-Click-Id`) and the click cookie, if one was set.
fn lander(fg: &Flowgate, target: &str, ip: &str) -> (String, Option<String>) {
    let r = fg.get(target, &[("User-Agent", CHROME), ("X-Forwarded-For", ip)]);
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = json(&r.body);
    let id = seen["headers"]["x-click-id"].as_str().unwrap().to_string();
    let cookie = (r.headers.iter())
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("fg_click="));
    (id, cookie)
}

fn click_through(fg: &Flowgate, target: &str, ip: &str, cookie: Option<&str>) -> Reply {
    let mut h = vec![("User-Agent", CHROME), ("X-Forwarded-For", ip)];
    if let Some(c) = cookie {
        h.push(("Cookie", c));
    }
    fg.get(target, &h)
}

fn of_type(events: &[serde_json::Value], kind: &str) -> Vec<serde_json::Value> {
    (events.iter())
        .filter(|e| e["type"] == kind)
        .cloned()
        .collect()
}

#[test]
fn a_landers_click_through_splits_seventy_thirty_with_the_first_clicks_params() {
    let up = Upstream::start("lp");
    let fg = Flowgate::start("", &rules(up.addr));
    let (mut a, mut b) = (0, 0);
    for i in 0..60 {
        let ip = format!("203.0.113.{}", i + 1);
        let (id, cookie) = lander(&fg, &format!("/?sub1=v{i}&other=x"), &ip);
        let cookie = cookie.expect("the lander's click cookie");
        // The click-through carries a query of its own; the macros see the first click's.
        let r = click_through(&fg, "/go?sub1=later", &ip, Some(&cookie));
        assert_eq!(r.status, 302, "{}", r.body);
        let to = r.header("location").unwrap();
        let query = format!("/?cid={id}&s=v{i}");
        match to.strip_suffix(&query) {
            Some("https://a.example") => a += 1,
            Some("https://b.example") => b += 1,
            _ => panic!("{to} does not end in {query}"),
        }
        assert!(r.header("set-cookie").is_none(), "no new click, no cookie");
        // Sticky: the same visitor clicking through again goes the same way.
        let again = click_through(&fg, "/go", &ip, Some(&cookie));
        assert_eq!(again.header("location"), Some(to));
    }
    assert_eq!(a + b, 60);
    assert!((32..=52).contains(&a), "offer_a {a} of 60, offer_b {b}");
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 60);
    let events = fg.events(60 + 120);
    let lp = of_type(&events, "lp_click");
    assert_eq!(lp.len(), 120, "one lp_click per click-through");
    assert!(lp.iter().all(|e| e["campaign"] == "spring"
        && e["flow"] == "fresh"
        && e["status"] == 302
        && e["unknown_click"].is_null()));
    let clicks = of_type(&events, "click");
    assert_eq!(clicks.len(), 60, "a click-through is no click of its own");
    assert!(lp
        .iter()
        .all(|e| clicks.iter().any(|c| c["click_id"] == e["click_id"])));
}

#[test]
fn without_cookies_cid_finds_the_click_and_an_unknown_click_gets_the_fallback() {
    let up = Upstream::start("lp");
    let fg = Flowgate::start("", &rules(up.addr));
    let (id, _) = lander(&fg, "/?sub1=push1", "198.51.100.1");
    let r = click_through(&fg, &format!("/go?cid={id}"), "198.51.100.1", None);
    assert_eq!(r.status, 302, "{}", r.body);
    let to = r.header("location").unwrap();
    assert!(to.ends_with(&format!("/?cid={id}&s=push1")), "{to}");
    // No cookie and no cid, an id nobody issued, a forged cookie: the fallback, never the
    // flows (which would have proxied to the lander).
    let nobody = "01a23000-0000-7000-8000-000000000000";
    for (target, cookie) in [
        ("/go", None),
        (&*format!("/go?cid={nobody}"), None),
        ("/go?cid=not-a-click", None),
        (
            "/go",
            Some("fg_click=AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
    ] {
        let r = click_through(&fg, target, "198.51.100.2", cookie);
        assert_eq!((r.status, &*r.body), (200, "safe"), "{target}");
    }
    // A flow without `then`: its click-through is the fallback too.
    let (plain, cookie) = lander(&fg, "/?via=plain", "198.51.100.3");
    assert_eq!(cookie, None, "no `then`, no click cookie");
    let r = click_through(&fg, &format!("/go?cid={plain}"), "198.51.100.3", None);
    assert_eq!(r.body, "safe");
    let events = fg.events(2 + 6);
    let lp = of_type(&events, "lp_click");
    assert_eq!(lp.len(), 6);
    let unknown: Vec<_> = lp.iter().filter(|e| e["unknown_click"] == true).collect();
    assert_eq!(unknown.len(), 4);
    assert!(unknown
        .iter()
        .all(|e| e["route"] == "safe" && e["click_id"] == ""));
    // The click without `then` was found: its event names it, and the fallback it got.
    let known: Vec<_> = lp.iter().filter(|e| e["click_id"] == *plain).collect();
    assert_eq!(known.len(), 1);
    assert_eq!(
        (&known[0]["route"], &known[0]["flow"]),
        (&"safe".into(), &serde_json::Value::Null)
    );
}

const POSTBACK: &str = "postback: { path: /postback }";

fn postback(fg: &Flowgate, query: &str) {
    let r = fg.get(&format!("/postback?{query}"), &[]);
    assert_eq!((r.status, &*r.body), (200, "ok\n"), "{query}");
}

#[test]
fn a_conversion_finds_its_click_counts_once_per_status_and_an_unknown_one_is_kept() {
    let up = Upstream::start("lp");
    let fg = Flowgate::start(POSTBACK, &rules(up.addr));
    let (id, _) = lander(&fg, "/?sub1=x", "192.0.2.10");
    for status in ["approved", "approved", "pending", "approved"] {
        postback(&fg, &format!("click_id={id}&payout=2.5&status={status}"));
    }
    postback(&fg, "click_id=tracker-own-id-7&payout=1");
    postback(&fg, "click_id=tracker-own-id-7&payout=1");
    let events = fg.events(1 + 3);
    let conversions = of_type(&events, "conversion");
    assert_eq!(conversions.len(), 3, "{conversions:#?}");
    let mine: Vec<_> = conversions
        .iter()
        .filter(|c| c["click_id"] == *id)
        .collect();
    let statuses: Vec<_> = mine
        .iter()
        .map(|c| c["conversion_status"].as_str())
        .collect();
    assert_eq!(statuses, [Some("approved"), Some("pending")]);
    for c in &mine {
        assert_eq!(
            (&c["campaign"], &c["flow"], &c["route"]),
            (&"spring".into(), &"fresh".into(), &"lander".into())
        );
        assert!(c["unattributed"].is_null());
    }
    let other = conversions
        .iter()
        .find(|c| c["click_id"] == "tracker-own-id-7");
    let other = other.expect("the unknown click's conversion is recorded");
    assert_eq!(other["unattributed"], true);
    assert!(other["campaign"].is_null());
}

#[test]
fn a_conversion_cap_of_three_skips_its_flow_after_three_conversions_and_after_a_restart() {
    let rules = r#"
routes:
  offer: { redirect: { to: "https://o.example/?cid={click_id}" } }
  safe: { respond: { body: "safe" } }
campaigns:
  - id: spring
    flows:
      - name: capped              # its cap is its only condition
        cap: { conversions: 3, per: day, tz: "+03:00" }
        to: offer
      - name: rest
        to: safe
"#;
    let mut fg = Flowgate::start(POSTBACK, rules);
    let offer = |fg: &Flowgate, i: usize| -> Option<String> {
        let ip = format!("203.0.113.{i}");
        let r = fg.get("/", &[("User-Agent", CHROME), ("X-Forwarded-For", &ip)]);
        let cid = r.header("location")?.split("cid=").nth(1)?;
        Some(cid.to_string())
    };
    for i in 1..=3 {
        let cid = offer(&fg, i).unwrap_or_else(|| panic!("conversion {i} is not in yet"));
        postback(&fg, &format!("click_id={cid}&status=approved"));
        // A repeat counts once: it never brings the cap nearer.
        postback(&fg, &format!("click_id={cid}&status=approved"));
    }
    assert_eq!(
        offer(&fg, 4),
        None,
        "three conversions: the flow is skipped"
    );
    assert_eq!(offer(&fg, 5), None);
    fg.signal("TERM");
    assert!(fg.process.wait().success());
    let p = spawn(&fg.dir.path().join("flowgate.yaml"));
    let r = get(p.addr(), "/", &[("User-Agent", CHROME)]);
    assert_eq!(r.body, "safe", "the count was kept");
}

#[test]
fn a_rule_test_says_which_click_the_store_finds_and_check_holds_the_click_through_to_it() {
    let up = Upstream::start("lp");
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), "", &rules(up.addr));
    std::fs::create_dir_all(dir.path().join("rules/tests")).unwrap();
    let url = "http://promo.example.com/go";
    let tests = format!(
        "- name: a lander's click-through\n  request: {{ url: \"{url}\", ua: \"{CHROME}\", ip: 203.0.113.1 }}\n  state: {{ click: {{ flow: fresh, params: {{ sub1: x }} }} }}\n  expect: {{ flow: fresh }}\n\
         - name: an unknown click gets the fallback, not the flows\n  request: {{ url: \"{url}\", ua: \"{CHROME}\" }}\n  expect: {{ route: safe }}\n\
         - name: a flow without then\n  request: {{ url: \"{url}\" }}\n  state: {{ click: {{ flow: no_then }} }}\n  expect: {{ route: safe }}\n"
    );
    std::fs::write(dir.path().join("rules/tests/click.yaml"), tests).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("3 rule tests passed"), "{text}");
}
