//! `unique` and `cap`: what they ask of the state, live, in shadow and as a rule test
//! assumes it; what they refuse, by field.

use super::*;
use crate::state::{Assumed, View};

const RULES: &str = r#"
routes:
  offer: { respond: { body: o } }
  offer_b: { respond: { body: b } }
  safe: { respond: { body: s } }
campaigns:
  - id: spring
    flows:
      - name: fresh
        if: { unique: { window: 24h } }
        to: offer
      - name: capped
        cap: { clicks: 2, per: day, tz: "+03:00" }
        to: offer_b
      - name: rest
        to: safe
"#;

const IP: &str = "203.0.113.7";

fn flow_with(rules: &Rules, state: View) -> Option<String> {
    let req = Req::get("promo.example.com", "/").ua(CHROME);
    let facts = req.facts();
    facts.state.set(state);
    let v = visitor(IP, facts.user_agent());
    rules
        .flow_name(&rules.evaluate(&v, &facts))
        .map(String::from)
}

fn assume(unique: bool, clicks: u32) -> View<'static> {
    View::Assumed(Assumed {
        unique: Some(unique),
        clicks: Some(clicks),
        conversions: None,
    })
}

#[test]
fn a_rule_test_says_what_the_state_answers_and_nothing_is_counted() {
    let rules = rules(RULES);
    assert_eq!(flow_with(&rules, View::default()).as_deref(), Some("fresh"));
    assert_eq!(
        flow_with(&rules, assume(false, 0)).as_deref(),
        Some("capped")
    );
    assert_eq!(
        flow_with(&rules, assume(false, 1)).as_deref(),
        Some("capped")
    );
    assert_eq!(flow_with(&rules, assume(false, 2)).as_deref(), Some("rest"));
    let cap = rules.campaigns[0].flows[1].cap.as_ref().unwrap();
    assert_eq!(
        cap.counter.count(crate::time::now_ms()),
        0,
        "assumed, never counted"
    );
}

#[test]
fn live_serving_counts_a_cap_exactly_and_shadow_rules_only_look() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::config::StateConfig {
        path: dir.path().join("state.db"),
        ..Default::default()
    };
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new().unwrap());
    let state = crate::state::State::open(&cfg, &[], metrics).unwrap();
    let rules = rules(RULES);
    let ip: IpAddr = IP.parse().unwrap();
    let visit = state.visit(ip, Some(CHROME), &HeaderMap::new());
    // Unique and not yet clicked: `fresh` decides, the cap is not asked.
    assert_eq!(
        flow_with(&rules, View::Live(&visit)).as_deref(),
        Some("fresh")
    );
    state.clicked(&visit, click(&rules, 0));
    let visit = state.visit(ip, Some(CHROME), &HeaderMap::new());
    let shadow = (0..5)
        .map(|_| flow_with(&rules, View::Shadow(&visit)))
        .collect::<Vec<_>>();
    assert!(
        shadow.iter().all(|f| f.as_deref() == Some("capped")),
        "{shadow:?}"
    );
    let live: Vec<_> = (0..3)
        .map(|_| flow_with(&rules, View::Live(&visit)))
        .collect();
    let names: Vec<_> = live.iter().map(|f| f.as_deref().unwrap_or("")).collect();
    assert_eq!(names, ["capped", "capped", "rest"]);
    assert_eq!(
        flow_with(&rules, View::Shadow(&visit)).as_deref(),
        Some("rest")
    );
    state.close();
}

fn click(rules: &Rules, flow: usize) -> crate::state::Click {
    let c = &rules.campaigns[0];
    crate::state::Click {
        click_id: uuid::Uuid::now_v7(),
        ts_ms: crate::time::now_ms(),
        campaign: Some("spring".into()),
        flow: Some(c.flows[flow].name.as_str().into()),
        route: "offer".into(),
        query: None,
        visitor: None,
        ua: None,
        ip: IP.parse().unwrap(),
        unique: None,
        scopes: [c.scope, c.flows[flow].scope],
    }
}

#[test]
fn explain_shows_what_it_assumed() {
    let rules = rules(RULES);
    let req = Req::get("promo.example.com", "/").ua(CHROME);
    let facts = req.facts();
    facts.state.set(assume(false, 1));
    let v = visitor(IP, facts.user_agent());
    let (d, trace) = rules.explain(intel(), &v, &facts);
    assert_eq!(rules.flow_name(&d), Some("capped"));
    let step = |c: &str| trace.iter().find(|s| s.condition == c).unwrap();
    let unique = step("if.unique");
    assert_eq!(
        (unique.value.as_str(), unique.result),
        ("assumed seen in the campaign within 24h", false)
    );
    let cap = step("cap");
    assert_eq!(
        (cap.value.as_str(), cap.result),
        ("assumed 1 of 2 clicks per day (UTC+03:00)", true)
    );
}

#[test]
fn a_cap_only_flow_may_stand_anywhere_and_bad_caps_and_windows_are_refused() {
    let rules = rules(
        "routes: { a: { respond: { body: a } }, b: { respond: { body: b } } }
campaigns:
  - id: c
    flows:
      - { name: first, cap: { clicks: 5, per: hour }, to: a }
      - { name: all, to: b }
",
    );
    assert_eq!(rules.campaigns[0].flows[0].cap.as_ref().unwrap().limit, 5);
    let flow = |f: &str| {
        format!(
            "routes: {{ a: {{ respond: {{ body: a }} }} }}
campaigns:
  - id: c
    flows:
      - {f}
      - {{ name: all, to: a }}
"
        )
    };
    let cases = [
        (
            "{ name: f, cap: { clicks: 5, per: week }, to: a }",
            "campaigns[c].flows[f].cap",
            "per \"week\": use hour, day or total",
        ),
        (
            "{ name: f, cap: { clicks: 5, tz: Europe/Moscow }, to: a }",
            "campaigns[c].flows[f].cap",
            "zone names are not supported",
        ),
        (
            "{ name: f, cap: { conversions: 5, clicks: 5 }, to: a }",
            "campaigns[c].flows[f].cap",
            "clicks or conversions, not both",
        ),
        (
            "{ name: f, cap: { clicks: 0 }, to: a }",
            "campaigns[c].flows[f].cap",
            "at least 1",
        ),
        (
            "{ name: f, if: { unique: { window: 24h, scope: visitor } }, to: a }",
            "campaigns[c].flows[f].if.unique",
            "scope \"visitor\": use campaign or flow",
        ),
        (
            "{ name: f, if: { unique: { window: 0s } }, to: a }",
            "campaigns[c].flows[f].if.unique",
            "at least 1s",
        ),
        ("{ name: f, to: a }", "campaigns[c].flows[f]", "has no `if`"),
    ];
    for (f, field, text) in cases {
        let p = problems_of(&flow(f));
        assert_problem(&p, 5, field, text);
    }
}

#[test]
fn unique_per_flow_is_its_own_scope() {
    let rules = rules(
        "routes: { a: { respond: { body: a } } }
campaigns:
  - id: c
    flows:
      - { name: f, if: { unique: { window: 1h, scope: flow } }, to: a }
      - { name: g, if: { unique: { window: 1h } }, to: a }
",
    );
    let scope = |i: usize| match rules.campaigns[0].flows[i].condition {
        Some(crate::rules::Condition::Unique { scope, .. }) => scope,
        _ => panic!("a unique condition"),
    };
    assert_eq!(scope(0), rules.campaigns[0].flows[0].scope);
    assert_eq!(scope(1), rules.campaigns[0].scope);
    assert_ne!(scope(0), scope(1));
}

#[test]
fn a_conversion_cap_is_read_never_taken_by_serving_and_explain_shows_it() {
    let rules = rules(
        "routes: { a: { respond: { body: a } }, b: { respond: { body: b } } }
campaigns:
  - id: c
    flows:
      - { name: capped, cap: { conversions: 2, per: hour }, to: a }
      - { name: rest, to: b }
",
    );
    let cap = rules.campaigns[0].flows[0].cap.as_ref().unwrap();
    let req = Req::get("promo.example.com", "/").ua(CHROME);
    let facts = req.facts();
    let v = visitor(IP, facts.user_agent());
    let assumed = |n| {
        facts.state.set(View::Assumed(Assumed {
            conversions: Some(n),
            ..Assumed::default()
        }));
        let (d, trace) = rules.explain(intel(), &v, &facts);
        let step = trace.iter().find(|s| s.condition == "cap").unwrap();
        (rules.flow_name(&d).map(String::from), step.value.clone())
    };
    assert_eq!(
        assumed(1),
        (
            Some("capped".into()),
            "assumed 1 of 2 conversions per hour".into()
        )
    );
    assert_eq!(assumed(2).0.as_deref(), Some("rest"));
    // Conversions count, whatever serving does; two of them close the flow.
    let now = crate::time::now_ms();
    rules.count_conversion("c", "capped", now);
    assert_eq!(cap.counter.count(now), 1);
    rules.count_conversion("c", "rest", now);
    rules.count_conversion("other", "capped", now);
    assert_eq!(cap.counter.count(now), 1);
    rules.count_conversion("c", "capped", now);
    assert_eq!(cap.counter.count(now), 2);
}
