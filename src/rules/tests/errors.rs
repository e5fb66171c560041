//! Everything wrong in the rules is reported at once, each problem naming file, line and
//! field, and nothing is compiled from rules that have any.

use super::*;

#[test]
fn every_problem_in_a_file_comes_back_at_once_each_with_its_line_and_field() {
    let p = problems_of(
        r#"routes:
  offer: { respond: { status: 100 } }
  gone: { respond: { status: 204, body: "x" } }
  both: { respond: { body: x, file: x.html } }
  away: { redirect: { to: "//evil.example/", status: 200 } }
  up: { proxy: { upstream: pool, path: "/a/../b" } }
  lost: { proxy: { upstream: nowhere } }
upstreams:
  pool: { peers: ["127.0.0.1"], connect_timeout: 0 }
fallback: missing
campaigns:
  - id: c
    match: { host: "promo.example.com:8080", path_prefix: "/promo/./x" }
    flows:
      - name: first
        to: offer
      - name: first
        if: { bot: true }
        to: nowhere
"#,
    );
    let all = [
        (
            2,
            "routes.offer.respond.status",
            "100 is not a final HTTP status",
        ),
        (3, "routes.gone.respond", "a 204 response has no body"),
        (4, "routes.both.respond", "give body or file, not both"),
        (
            5,
            "routes.away.redirect.status",
            "200 is not a redirect status",
        ),
        (
            5,
            "routes.away.redirect.to",
            "which browsers read as another host",
        ),
        (6, "routes.up.proxy.path", "write \"/b\""),
        (
            7,
            "routes.lost.proxy.upstream",
            "unknown upstream \"nowhere\"; known: pool",
        ),
        (9, "upstreams.pool.peers", "needs a port"),
        (9, "upstreams.pool.connect_timeout", "must be more than 0"),
        (10, "fallback", "unknown route \"missing\""),
        (13, "campaigns[c].match.host", "has a port"),
        (13, "campaigns[c].match.path_prefix", "write \"/promo/x\""),
        (15, "campaigns[c].flows[first]", "has no `if`"),
        (17, "campaigns[c].flows[first]", "flow name used twice"),
        (
            19,
            "campaigns[c].flows[first].to",
            "unknown route \"nowhere\"",
        ),
    ];
    for (line, field, text) in all {
        assert_problem(&p, line, field, text);
    }
    assert_eq!(p.len(), all.len(), "{p:#?}");
}

#[test]
fn a_name_defined_in_two_files_names_both_places() {
    let p = problems(&[
        (
            "rules/a.yaml",
            "routes:\n  safe: { respond: { body: a } }\n",
        ),
        (
            "rules/b.yaml",
            "# b\nroutes:\n  safe: { respond: { body: b } }\n",
        ),
    ]);
    assert_eq!(
        p,
        ["rules/b.yaml:3:9: routes.safe: \"safe\" is also defined at rules/a.yaml:2"]
    );
}

#[test]
fn a_campaign_id_and_the_fallback_may_each_be_given_once() {
    let route = "routes:\n  a: { respond: { body: a } }\nfallback: a\n";
    let campaign = "campaigns:\n  - { id: c, flows: [{ name: f, to: a }] }\n";
    let p = problems(&[
        ("rules/a.yaml", &format!("{route}{campaign}")),
        ("rules/main.yaml", &format!("fallback: a\n{campaign}")),
    ]);
    assert_problem(&p, 1, "fallback", "fallback is also set at rules/a.yaml:3");
    assert_problem(
        &p,
        3,
        "campaigns[c]",
        "campaign id \"c\" is also used at rules/a.yaml:5",
    );
}

#[test]
fn an_empty_or_broken_file_is_a_problem_not_an_empty_rule_set() {
    let p = problems(&[("rules/main.yaml", "# nothing yet\n\n")]);
    assert_eq!(
        p,
        ["rules/main.yaml: empty rule file (write `{}` if it is meant to be empty)"]
    );
    let p = problems_of(
        "routes:\n  a: { respond: { body: a } }\ncampaigns:\n  - id: c\n    flow: []\n",
    );
    assert!(
        p.len() == 1 && p[0].starts_with("rules/main.yaml:5:") && p[0].contains("flow"),
        "{p:#?}"
    );
}

#[test]
fn upstreams_are_checked_before_any_request_would_fail_on_them() {
    let p = problems_of(
        r#"upstreams:
  none: { peers: [] }
  zero: { peers: ["127.0.0.1:0"] }
  slow: { peers: ["127.0.0.1:8081"], read_timeout: 0 }
  tls: { peers: ["127.0.0.1:8443"], tls: true, sni: "not a name" }
  badhost: { peers: ["127.0.0.1:8081"], host: "" }
"#,
    );
    let all = [
        (2, "upstreams.none.peers", "needs at least one peer"),
        (3, "upstreams.zero.peers", "port 0"),
        (4, "upstreams.slow.read_timeout", "must be more than 0"),
        (5, "upstreams.tls.sni", "is not a TLS server name"),
        (6, "upstreams.badhost.host", "is not a valid host"),
    ];
    for (line, field, text) in all {
        assert_problem(&p, line, field, text);
    }
    assert_eq!(p.len(), all.len(), "{p:#?}");
}

#[test]
fn a_campaign_needs_a_host_a_flow_and_a_name_for_each_flow() {
    let p = problems_of(
        r#"routes:
  a: { respond: { body: a } }
campaigns:
  - id: nohost
    match: { host: [] }
    flows: [{ name: f, to: a }]
  - id: noflows
    flows: []
  - id: ""
    flows: [{ name: " ", to: a }]
"#,
    );
    assert_problem(
        &p,
        5,
        "campaigns[nohost].match.host",
        "needs at least one host",
    );
    assert_problem(&p, 7, "campaigns[noflows].flows", "needs at least one flow");
    assert_problem(&p, 9, "campaigns[].id", "cannot be empty");
    assert_problem(&p, 10, "campaigns[].flows[ ].name", "cannot be empty");
}

#[test]
fn well_formed_rules_compile_with_the_default_fallback_added() {
    let rules = rules(
        r#"upstreams:
  pool: { peers: ["127.0.0.1:8081", "[::1]:8081"], tls: true, host: shop.example.com }
routes:
  up: { proxy: { upstream: pool, path: /safe/ } }
campaigns:
  - id: c
    flows: [{ name: f, to: up }]
"#,
    );
    let up = &rules.upstreams[0];
    assert_eq!((up.peers.len(), up.sni.as_str()), (2, "shop.example.com"));
    let names: Vec<&str> = rules.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["up", "not_found"]);
    let crate::rules::Action::Proxy { path, .. } = &rules.routes[0].action else {
        panic!("a proxy route")
    };
    assert_eq!(path, "/safe", "kept without its trailing slash");
}
