//! Each condition kind, compiled from what operators write and evaluated for a request; and
//! what each refuses, by field.

use super::*;

/// A campaign whose one flow sends the visitors the condition holds for to `hit`.
fn when(condition: &str) -> String {
    format!(
        "routes:\n  hit: {{ respond: {{ body: y }} }}\n  miss: {{ respond: {{ body: n }} }}
fallback: miss
campaigns:
  - id: c
    flows:
      - name: f
        if: {condition}
        to: hit
"
    )
}

fn holds(rules: &Rules, ip: &str, req: &Req) -> bool {
    route_of(rules, ip, req) == "hit"
}

fn browser(path_and_query: &str) -> Req {
    Req::get("promo.example.com", path_and_query).ua(CHROME)
}

const IP: &str = "203.0.113.7";

#[test]
fn request_conditions_read_the_request() {
    let r = rules(&when(
        "{ param: { gclid: present, utm_source: \"^(google|bing)$\", debug: absent } }",
    ));
    assert!(holds(&r, IP, &browser("/?gclid=1&utm_source=google")));
    assert!(!holds(&r, IP, &browser("/?gclid=1&utm_source=yahoo")));
    assert!(!holds(&r, IP, &browser("/?gclid=1&utm_source=bing&debug")));
    assert!(!holds(&r, IP, &browser("/?utm_source=bing")));

    let r = rules(&when(
        "{ header: { X-Requested-With: absent, sec-fetch-mode: navigate } }",
    ));
    assert!(holds(
        &r,
        IP,
        &browser("/").header("sec-fetch-mode", "navigate")
    ));
    assert!(!holds(
        &r,
        IP,
        &browser("/")
            .header("x-requested-with", "x")
            .header("sec-fetch-mode", "navigate")
    ));

    let r = rules(&when("{ referer: empty }"));
    assert!(holds(&r, IP, &browser("/")));
    assert!(!holds(
        &r,
        IP,
        &browser("/").header("referer", "https://www.google.com/")
    ));

    let r = rules(&when("{ method: [get, head] }"));
    assert!(holds(&r, IP, &browser("/")));
    let mut post = browser("/");
    post.method = http::Method::POST;
    assert!(!holds(&r, IP, &post));

    let r = rules(&when("{ path: [/promo/, /sale] }"));
    assert!(holds(&r, IP, &browser("/promo/x")) && holds(&r, IP, &browser("/sales")));
    assert!(!holds(&r, IP, &browser("/promo")));
    let r = rules(&when("{ path: \"~ ^/p/[0-9]+$\" }"));
    assert!(holds(&r, IP, &browser("/p/12")) && !holds(&r, IP, &browser("/p/x")));
}

#[test]
fn visitor_conditions_read_the_visitor() {
    let r = rules(&when("{ ip: [203.0.113.0/28, \"2001:db8::/32\"] }"));
    assert!(holds(&r, "203.0.113.7", &browser("/")) && holds(&r, "2001:db8::1", &browser("/")));
    assert!(!holds(&r, "203.0.113.99", &browser("/")));

    let r = rules(&when("{ ip_list: datacenter }"));
    assert!(holds(&r, "198.51.100.1", &browser("/")) && !holds(&r, IP, &browser("/")));

    let r = rules(&when("{ device: desktop, os: windows, browser: chrome }"));
    assert!(holds(&r, IP, &browser("/")));
    let r = rules(&when("{ device: mobile }"));
    assert!(!holds(&r, IP, &browser("/")));

    // No databases: nothing is known of country, ASN or network owner.
    for unknown in [
        "{ country: [US, DE] }",
        "{ asn: 15169 }",
        "{ as_org: Google }",
    ] {
        let r = rules(&when(unknown));
        assert!(!holds(&r, IP, &browser("/")), "{unknown}");
    }
}

#[test]
fn all_any_and_not_combine_and_several_keys_must_all_hold() {
    let r = rules(&when("{ any: [{ bot: true }, { ip_list: datacenter }] }"));
    assert!(holds(&r, "198.51.100.1", &browser("/")));
    assert!(holds(&r, IP, &Req::get("x", "/").ua(CURL)));
    assert!(!holds(&r, IP, &browser("/")));

    let r = rules(&when("{ not: { bot: true }, param: { gclid: present } }"));
    assert!(holds(&r, IP, &browser("/?gclid=1")));
    assert!(!holds(&r, IP, &browser("/")));
    assert!(!holds(&r, IP, &Req::get("x", "/?gclid=1").ua(CURL)));

    let r = rules(&when("{ all: [{ bot: false }, { language: [de, fr] }] }"));
    assert!(holds(
        &r,
        IP,
        &browser("/").header("accept-language", "fr-CH, fr;q=0.9")
    ));
    assert!(!holds(
        &r,
        IP,
        &browser("/").header("accept-language", "en")
    ));
}

#[test]
fn a_schedule_holds_in_its_own_offset() {
    let r = rules(&when(
        "{ schedule: { days: [mon, tue, wed, thu, fri], hours: \"09:00-17:30\", tz: \"+02:00\" } }",
    ));
    let at = |t: &str| {
        let mut req = browser("/");
        req.at = crate::time::parse_rfc3339(t);
        req
    };
    assert!(
        holds(&r, IP, &at("2026-11-23T07:00:00Z")),
        "Monday 09:00 at +02:00"
    );
    assert!(!holds(&r, IP, &at("2026-11-23T06:59:00Z")));
    assert!(!holds(&r, IP, &at("2026-11-22T10:00:00Z")), "Sunday");
}

#[test]
fn a_rate_is_counted_per_visitor_and_shared_by_the_same_rate_elsewhere() {
    let r = rules(
        "routes:\n  hit: { respond: { body: y } }\n  miss: { respond: { body: n } }
fallback: miss
campaigns:
  - id: a
    match: { path_prefix: /a/ }
    flows: [{ name: f, if: { rate: { per: ip, max: 2, window: 1m } }, to: hit }]
  - id: b
    match: { path_prefix: /b/ }
    flows: [{ name: f, if: { rate: { per: ip, max: 2, window: 1m } }, to: hit }]
",
    );
    let (a, b) = (browser("/a/x"), browser("/b/x"));
    assert!(
        !holds(&r, IP, &a) && !holds(&r, IP, &b),
        "two requests: within the rate"
    );
    assert!(
        holds(&r, IP, &a),
        "the third, in either campaign, is over it"
    );
    assert!(
        !holds(&r, "203.0.113.8", &b),
        "another visitor has its own count"
    );
}

#[test]
fn each_bad_value_is_a_problem_at_its_key() {
    let cases = [
        ("{ country: [US, XX, Germany] }", "if.country", "\"XX\" is not an ISO 3166-1"),
        ("{ country: [US, XX, Germany] }", "if.country", "\"Germany\" is not an ISO"),
        ("{ ip: 10.0.0.300/8 }", "if.ip", "10.0.0.300"),
        ("{ ip_list: tor }", "if.ip_list", "unknown ip list \"tor\" (lists come from intel.lists in the config); known: datacenter"),
        ("{ device: fridge }", "if.device", "unknown value \"fridge\"; known:"),
        ("{ os: beos }", "if.os", "unknown value \"beos\""),
        ("{ browser: mosaic }", "if.browser", "unknown value \"mosaic\""),
        ("{ anonymous: [vpn, cloak] }", "if.anonymous", "unknown flag \"cloak\"; known: vpn, tor"),
        ("{ region: [\" \"] }", "if.region", "names cannot be empty"),
        ("{ ua: \"(\" }", "if.ua", "bad regex \"(\""),
        ("{ referer: \"[\" }", "if.referer", "bad regex"),
        ("{ param: { q: \"(\" } }", "if.param.q", "bad regex"),
        ("{ header: { \"bad header\": present } }", "if.header.bad header", "is not a valid header name"),
        ("{ language: en-US }", "if.language", "\"en-US\" is not a primary language tag"),
        ("{ method: \"G T\" }", "if.method", "is not an HTTP method"),
        ("{ path: [promo] }", "if.path", "\"promo\": a prefix starts with /, a regex with ~"),
        ("{ path: [/a/../b] }", "if.path", "write \"/b\""),
        ("{ schedule: { hours: \"9-5pm\" } }", "if.schedule", "is not a window"),
        ("{ schedule: { hours: \"09-09\" } }", "if.schedule", "is an empty window"),
        ("{ schedule: { days: [someday] } }", "if.schedule", "is not a day"),
        ("{ schedule: { tz: Europe/Berlin } }", "if.schedule", "zone names are not supported"),
        ("{ rate: { per: visitor, max: 1, window: 1s } }", "if.rate", "per: \"visitor\""),
        ("{ rate: { per: ip, max: 0, window: 1s } }", "if.rate", "max must be at least 1"),
        ("{ all: [] }", "if.all", "needs at least one condition"),
        ("{ any: [{ bot: true }, { country: ZZ }] }", "if.any[1].country", "\"ZZ\""),
        ("{ not: { device: fridge } }", "if.not.device", "unknown value"),
        ("{}", "if", "empty condition"),
    ];
    for (condition, field, text) in cases {
        let p = problems_of(&when(condition));
        assert_problem(&p, 9, &format!("campaigns[c].flows[f].{field}"), text);
    }
}

#[test]
fn an_empty_list_is_refused_since_it_would_never_match_and_an_empty_map_since_it_always_would() {
    for key in [
        "country",
        "region",
        "city",
        "asn",
        "anonymous",
        "ip",
        "ip_list",
        "device",
        "os",
        "browser",
        "language",
        "method",
        "path",
    ] {
        let p = problems_of(&when(&format!("{{ {key}: [] }}")));
        assert_problem(
            &p,
            9,
            &format!("campaigns[c].flows[f].if.{key}"),
            "needs at least one value",
        );
    }
    for key in ["param", "header"] {
        let p = problems_of(&when(&format!("{{ {key}: {{}} }}")));
        assert_problem(
            &p,
            9,
            &format!("campaigns[c].flows[f].if.{key}"),
            "needs at least one value",
        );
    }
}
