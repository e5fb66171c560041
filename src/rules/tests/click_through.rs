//! `click_path` and `then`: which requests are a lander's click-through, what `then` decides
//! for the lander's click, and what the compiler refuses, by field.

use super::*;

const RULES: &str = r#"
routes:
  lander: { respond: { body: l } }
  offer_a: { respond: { body: a } }
  offer_b: { respond: { body: b } }
  safe: { respond: { body: s } }
fallback: safe
campaigns:
  - id: spring
    match: { host: promo.example.com }
    click_path: /go
    flows:
      - name: fresh
        if: { param: { src: push } }
        to: lander
        then: { offer_a: 70, offer_b: 30 }
      - name: plain
        to: lander
"#;

#[test]
fn the_click_path_on_the_campaigns_host_continues_the_click_into_then() {
    let rules = rules(RULES);
    let through = |host: &str, path: &str| rules.click_through(&Req::get(host, path).facts());
    assert_eq!(through("promo.example.com", "/go"), Some(0));
    assert_eq!(through("promo.example.com", "/go?cid=1"), Some(0));
    assert_eq!(through("promo.example.com", "/go/x"), None);
    assert_eq!(through("other.example.com", "/go"), None);
    assert!(rules.leads_to_click_through(&crate::rules::Decision {
        campaign: Some(0),
        flow: Some(0),
        route: 0
    }));
    let req = Req::get("promo.example.com", "/go").ua(CHROME);
    let facts = req.facts();
    let mut a = 0;
    for i in 0..200 {
        let v = visitor(&format!("203.0.113.{}", i % 250), facts.user_agent());
        let d = rules.continue_click(0, Some(("spring", "fresh")), &v, &facts);
        assert_eq!(d.flow, Some(0));
        a += usize::from(rules.route(d.route).name == "offer_a");
    }
    assert!((110..=170).contains(&a), "offer_a {a} of 200");
    let v = visitor("203.0.113.1", facts.user_agent());
    let name = |c| {
        rules
            .route(rules.continue_click(0, c, &v, &facts).route)
            .name
            .as_str()
    };
    // Unknown, another campaign's, a flow without `then`, a flow that is gone: the fallback.
    assert_eq!(name(None), "safe");
    assert_eq!(name(Some(("autumn", "fresh"))), "safe");
    assert_eq!(name(Some(("spring", "plain"))), "safe");
    assert_eq!(name(Some(("spring", "gone"))), "safe");
}

#[test]
fn a_bad_click_path_and_then_without_one_are_refused_by_field() {
    let campaign = |click_path: &str, then: &str| {
        format!(
            "routes: {{ a: {{ respond: {{ body: a }} }} }}
campaigns:
  - id: c
    {click_path}
    flows:
      - {{ name: f, to: a, {then} }}
"
        )
    };
    let p = problems_of(&campaign("click_path: go", ""));
    assert_problem(&p, 4, "campaigns[c].click_path", "must start with /");
    let p = problems_of(&campaign("click_path: /a/../go", ""));
    assert_problem(&p, 4, "campaigns[c].click_path", "write \"/go\"");
    let p = problems_of(&campaign("", "then: a"));
    assert_problem(
        &p,
        6,
        "campaigns[c].flows[f].then",
        "needs the campaign's click_path",
    );
    let p = problems_of(&campaign("click_path: /go", "then: { a: 1, nope: 1 }"));
    assert_problem(
        &p,
        6,
        "campaigns[c].flows[f].then",
        "unknown route \"nope\"",
    );
}
