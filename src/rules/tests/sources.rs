//! `sources:`: a click's source is the first whose match holds; its params come from the
//! click URL, hashed fields only as SHA-256; postbacks render with every value encoded; and
//! every mistake in a source is named with its line and field.

use super::*;
use crate::rules::sources::{hash_value, Facts, PostbackMethod};

const SOURCES: &str = r#"routes:
  safe: { respond: { status: 200, body: ok } }
campaigns:
  - id: spring
    flows:
      - name: all
        to: safe
sources:
  pushnet:
    match: { param: { src: pushnet } }
    params: { external_id: clickid, zone: zoneid, email: em }
    hash: [email]
    postback:
      url: "https://ads.example.net/conv?clickid={external_id}&payout={payout}&z={zone}"
      statuses: [approved]
  meta:
    match: { param: { fbclid: present } }
    params: { external_id: fbclid }
    postback:
      method: POST
      url: "https://graph.example.com/v19.0/1234/events"
      headers: { authorization: "Bearer fixed-test-token" }
      body:
        data:
          - event_name: Purchase
            event_time: "{ts_unix}"
            action_source: website
            user_data: { em: ["{email}"] }
            custom_data: { value: "{payout}", currency: "{currency}" }
      hash: [email]
  rest: {}
"#;

fn facts(pairs: &[(&str, &str)]) -> Facts {
    (pairs.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_first_source_whose_match_holds_is_the_clicks_and_hashed_params_never_stay_clear() {
    let rules = rules(SOURCES);
    let names: Vec<&str> = rules.sources.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["pushnet", "meta", "rest"], "order as written");
    let v = visitor("203.0.113.9", Some(CHROME));
    let req = Req::get(
        "promo.example.com",
        "/?src=pushnet&clickid=abc&zoneid=7&em=%20Ann@Example.com",
    );
    let facts = req.facts();
    let s = (rules.sources.iter())
        .find(|s| s.matches(&v, &facts))
        .unwrap();
    assert_eq!(&*s.name, "pushnet");
    let params = s.params_of(&facts);
    let get = |k: &str| {
        params
            .iter()
            .find(|(f, _)| &**f == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("external_id"), Some("abc"));
    assert_eq!(get("zone"), Some("7"));
    assert_eq!(get("email"), hash_value("ann@example.com").as_deref());
    assert!(!format!("{params:?}").to_lowercase().contains("ann@"));

    let other = Req::get("promo.example.com", "/?x=1");
    let other = other.facts();
    let s = rules.sources.iter().find(|s| s.matches(&v, &other));
    assert_eq!(
        s.map(|s| &*s.name),
        Some("rest"),
        "a source without match takes the rest"
    );
    assert!(
        rules.remembers,
        "a source with a postback needs its clicks stored"
    );
}

#[test]
fn a_get_postback_encodes_every_value_and_a_post_renders_its_json_body() {
    let rules = rules(SOURCES);
    let push = rules.sources[0].postback.as_ref().unwrap();
    assert!(push.forwards(Some("APPROVED")) && !push.forwards(Some("pending")));
    assert!(!push.forwards(None));
    let r = push.render(&facts(&[("external_id", "a b&c"), ("payout", "1.5")]));
    assert_eq!(r.method, PostbackMethod::Get);
    assert_eq!(
        r.url,
        "https://ads.example.net/conv?clickid=a%20b%26c&payout=1.5&z="
    );
    let meta = rules.sources[1].postback.as_ref().unwrap();
    assert!(meta.forwards(Some("anything")), "no statuses: all");
    let r = meta.render(&facts(&[
        ("payout", "12"),
        ("currency", "EUR\"x"),
        ("ts_unix", "1700000000"),
        ("email", "deadbeef"),
    ]));
    assert_eq!(r.method, PostbackMethod::Post);
    let body: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"data": [{
            "event_name": "Purchase", "event_time": 1_700_000_000, "action_source": "website",
            "user_data": {"em": ["deadbeef"]},
            "custom_data": {"value": 12, "currency": "EUR\"x"}
        }]})
    );
    assert_eq!(r.headers[0].0.as_str(), "authorization");
}

#[test]
fn every_mistake_in_a_source_names_its_line_and_field() {
    let p = problems_of(
        r#"routes:
  safe: { respond: { status: 200 } }
sources:
  a:
    params: { click_id: x }
    postback: { url: "https://x.example/?c={nope}" }
  b:
    postback: { url: "https://x.example/", method: PUT }
  c:
    postback: { url: "https://x.example/", body: { a: "{payout}" } }
  d:
    postback:
      url: "ftp://x.example/"
      method: POST
      body: { a: { b: "{missing}" } }
      headers: { x-key: { env: FLOWGATE_TEST_UNSET_SECRET }, host: evil }
      statuses: []
  "bad name":
    match: { country: [XX] }
"#,
    );
    assert_problem(&p, 5, "sources.a.params.click_id", "flowgate's own macro");
    assert_problem(&p, 6, "sources.a.postback.url", "unknown macro {nope}");
    assert_problem(&p, 8, "sources.b.postback.method", "must be GET or POST");
    assert_problem(
        &p,
        10,
        "sources.c.postback.body",
        "only with `method: POST`",
    );
    assert_problem(&p, 13, "sources.d.postback.url", "must be an http(s) URL");
    assert_problem(
        &p,
        15,
        "sources.d.postback.body.a.b",
        "unknown macro {missing}",
    );
    assert_problem(
        &p,
        16,
        "sources.d.postback.headers.x-key",
        "FLOWGATE_TEST_UNSET_SECRET is not set",
    );
    assert_problem(
        &p,
        16,
        "sources.d.postback.headers.host",
        "sets this header itself",
    );
    assert_problem(
        &p,
        17,
        "sources.d.postback.statuses",
        "lists conversion statuses",
    );
    assert_problem(&p, 19, "sources.bad name", "metric label");
    assert!(
        p.iter()
            .any(|x| x.contains("sources.bad name.match.country")),
        "{p:#?}"
    );
}
