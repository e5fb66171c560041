//! Flows are tried top-down and the first that matches decides; what matches nothing goes to
//! the fallback.

use super::*;
use crate::rules::Action;

const RULES: &str = r#"
routes:
  offer: { respond: { body: offer } }
  safe: { respond: { body: safe } }
  shop: { redirect: { to: "https://shop.example.com/" } }
campaigns:
  - id: spring
    match: { host: promo.example.com }
    flows:
      - name: automation
        if: { bot: true }
        to: safe
      - name: datacenter
        if: { ip_list: datacenter }
        to: safe
      - name: germany
        if: { language: de }
        to: shop
      - name: people
        if: { bot: false }
        to: offer
"#;

#[test]
fn a_browser_gets_the_offer_and_a_tool_gets_the_safe_page() {
    let rules = rules(RULES);
    let browser = Req::get("promo.example.com", "/").ua(CHROME);
    assert_eq!(
        decide(&rules, "203.0.113.7", &browser),
        (Some("spring"), Some("people"), "offer")
    );
    let tool = Req::get("promo.example.com", "/").ua(CURL);
    assert_eq!(
        decide(&rules, "203.0.113.7", &tool),
        (Some("spring"), Some("automation"), "safe")
    );
    let nothing = Req::get("promo.example.com", "/");
    assert_eq!(
        route_of(&rules, "203.0.113.7", &nothing),
        "safe",
        "no user agent is a bot"
    );
}

#[test]
fn the_first_flow_that_matches_wins_even_when_later_ones_would_too() {
    let rules = rules(RULES);
    // A German browser on a datacenter address matches `datacenter`, `germany` and `people`.
    let req = Req::get("promo.example.com", "/")
        .ua(CHROME)
        .header("accept-language", "de-DE,de;q=0.9");
    assert_eq!(
        decide(&rules, "198.51.100.20", &req),
        (Some("spring"), Some("datacenter"), "safe")
    );
    assert_eq!(
        decide(&rules, "203.0.113.7", &req),
        (Some("spring"), Some("germany"), "shop")
    );
}

#[test]
fn a_request_no_campaign_matches_gets_the_default_not_found() {
    let rules = rules(RULES);
    let other = Req::get("elsewhere.example.com", "/").ua(CHROME);
    assert_eq!(
        decide(&rules, "203.0.113.7", &other),
        (None, None, "not_found")
    );
    let Action::Respond { status, body, .. } = &rules.route(rules.fallback).action else {
        panic!("not_found is a local answer");
    };
    assert_eq!((*status, &body[..]), (404, &b"not found\n"[..]));
}

#[test]
fn a_campaign_whose_flows_all_fail_sends_the_visitor_to_the_fallback() {
    let rules = rules(
        r#"
routes:
  offer: { respond: { body: offer } }
  safe: { respond: { body: safe } }
fallback: safe
campaigns:
  - id: us-only
    flows:
      - name: americans
        if: { country: US }
        to: offer
"#,
    );
    let req = Req::get("promo.example.com", "/").ua(CHROME);
    // No country database: the visitor's country is unknown, which is not US.
    assert_eq!(
        decide(&rules, "203.0.113.7", &req),
        (Some("us-only"), None, "safe")
    );
}

#[test]
fn a_last_flow_without_if_catches_everyone_left() {
    let rules = rules(
        r#"
routes:
  offer: { respond: { body: offer } }
  safe: { respond: { body: safe } }
campaigns:
  - id: c
    flows:
      - name: bots
        if: { bot: true }
        to: safe
      - name: rest
        to: offer
"#,
    );
    let req = Req::get("any.example", "/x").ua(CHROME);
    assert_eq!(
        decide(&rules, "203.0.113.7", &req),
        (Some("c"), Some("rest"), "offer")
    );
}

#[test]
fn the_explain_trace_agrees_with_the_decision() {
    let rules = rules(RULES);
    let req = Req::get("promo.example.com", "/")
        .ua(CHROME)
        .header("accept-language", "de");
    let facts = req.facts();
    let v = visitor("203.0.113.7", facts.user_agent());
    let (d, trace) = rules.explain(intel(), &v, &facts);
    assert_eq!(d, rules.evaluate(&v, &facts));
    let flows: Vec<(&str, bool)> = trace
        .iter()
        .filter(|s| s.condition == "flow")
        .map(|s| (s.flow.as_deref().unwrap_or(""), s.result))
        .collect();
    assert_eq!(
        flows,
        [
            ("automation", false),
            ("datacenter", false),
            ("germany", true)
        ]
    );
    let lang = trace.iter().find(|s| s.condition == "if.language");
    assert_eq!(
        lang.map(|s| (s.value.as_str(), s.result)),
        Some(("de", true))
    );
}
