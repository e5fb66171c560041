//! Weighted splits: branches get visitors in proportion to their weights, and a visitor
//! keeps its branch.

use super::*;

fn split(weights: &str) -> String {
    format!(
        r#"
routes:
  offer: {{ respond: {{ body: offer }} }}
  shop: {{ respond: {{ body: shop }} }}
  off: {{ respond: {{ body: off }} }}
campaigns:
  - id: ab
    flows:
      - name: test
        to: {weights}
"#
    )
}

fn address(i: u32) -> String {
    std::net::Ipv4Addr::from(0xcb00_7100 + i).to_string()
}

fn counts(rules: &Rules, n: u32) -> std::collections::BTreeMap<String, u32> {
    let mut out = std::collections::BTreeMap::new();
    let req = Req::get("promo.example.com", "/").ua(CHROME);
    for i in 0..n {
        *out.entry(route_of(rules, &address(i), &req).to_string())
            .or_default() += 1;
    }
    out
}

#[test]
fn visitors_are_shared_out_by_weight_and_a_zero_weight_gets_none() {
    let rules = rules(&split("{ offer: 80, shop: 20, off: 0 }"));
    let seen = counts(&rules, 4000);
    let offer = seen.get("offer").copied().unwrap_or(0);
    let shop = seen.get("shop").copied().unwrap_or(0);
    assert_eq!(seen.get("off"), None, "{seen:?}");
    assert_eq!(offer + shop, 4000);
    assert!((3000..=3400).contains(&offer), "about 80%: {seen:?}");
}

#[test]
fn a_visitor_keeps_its_branch_across_requests_and_recompiles() {
    let first = rules(&split("{ offer: 50, shop: 50 }"));
    let again = rules(&split("{ offer: 50, shop: 50 }"));
    let req = Req::get("promo.example.com", "/any/page").ua(CHROME);
    for i in 0..200 {
        let ip = address(i);
        let branch = route_of(&first, &ip, &req);
        assert_eq!(route_of(&first, &ip, &req), branch);
        assert_eq!(route_of(&again, &ip, &req), branch, "{ip}");
    }
    // Another user agent at the same address may be another visitor.
    let other = Req::get("promo.example.com", "/").ua(CURL);
    let moved = (0..200)
        .filter(|&i| route_of(&first, &address(i), &req) != route_of(&first, &address(i), &other))
        .count();
    assert!(
        moved > 50,
        "the user agent is part of who a visitor is: {moved}"
    );
}

#[test]
fn a_split_reports_every_unknown_route_and_needs_a_positive_weight() {
    let p = problems_of(&split("{ offer: 1, nope: 1, gone: 1 }"));
    assert_problem(
        &p,
        10,
        "campaigns[ab].flows[test].to",
        "unknown route \"nope\"",
    );
    assert_problem(
        &p,
        10,
        "campaigns[ab].flows[test].to",
        "unknown route \"gone\"",
    );
    let p = problems_of(&split("{ offer: 0, shop: 0 }"));
    assert_problem(
        &p,
        10,
        "campaigns[ab].flows[test].to",
        "needs a positive weight",
    );
    let p = problems_of(&split("{}"));
    assert_problem(
        &p,
        10,
        "campaigns[ab].flows[test].to",
        "needs a positive weight",
    );
}

#[test]
fn weights_that_overflow_are_a_problem_not_a_silently_dropped_flow() {
    let p = problems_of(&split("{ offer: 4294967295, shop: 1 }"));
    assert_problem(
        &p,
        10,
        "campaigns[ab].flows[test].to",
        "the weights add up to 4294967296, more than 4294967295",
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    // The largest total there is still compiles.
    let rules = rules(&split("{ offer: 4294967294, shop: 1 }"));
    assert_eq!(rules.campaigns[0].flows.len(), 1);
}

#[test]
fn explain_names_the_sticky_branch() {
    let rules = rules(&split("{ offer: 1, shop: 1 }"));
    let req = Req::get("promo.example.com", "/").ua(CHROME);
    let facts = req.facts();
    let v = visitor("203.0.113.9", facts.user_agent());
    let (d, trace) = rules.explain(intel(), &v, &facts);
    let step = trace
        .iter()
        .find(|s| s.condition == "split")
        .expect("a split step");
    let route = &rules.route(d.route).name;
    assert_eq!(
        step.value,
        format!("sticky branch {route} (of total weight 2)")
    );
}
