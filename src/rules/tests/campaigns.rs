//! Which campaign a request belongs to: the longest path prefix, then the most specific host.

use super::*;
use crate::rules::request::canonical_host;

fn routes_and(campaigns: &str) -> Rules {
    rules(&format!(
        "routes:\n  a: {{ respond: {{ body: a }} }}\nfallback: a\ncampaigns:\n{campaigns}"
    ))
}

/// The campaign for `host` and `path`, the host as the proxy gives it to the rules.
fn campaign<'r>(rules: &'r Rules, raw_host: &str, path: &str) -> Option<&'r str> {
    let host = canonical_host(raw_host).expect("a valid host");
    decide(rules, "203.0.113.7", &Req::get(host, path).ua(CHROME)).0
}

const ONE_FLOW: &str = "flows: [{ name: all, to: a }]";

#[test]
fn the_longest_path_prefix_wins_then_the_most_specific_host() {
    let rules = routes_and(&format!(
        "  - {{ id: any-root, match: {{ host: '*' }}, {ONE_FLOW} }}
  - {{ id: sub-root, match: {{ host: '*.example.com' }}, {ONE_FLOW} }}
  - {{ id: deep-sub, match: {{ host: '*.promo.example.com' }}, {ONE_FLOW} }}
  - {{ id: exact-root, match: {{ host: promo.example.com }}, {ONE_FLOW} }}
  - {{ id: any-admin, match: {{ host: '*', path_prefix: /admin/ }}, {ONE_FLOW} }}
"
    ));
    assert_eq!(
        campaign(&rules, "promo.example.com", "/"),
        Some("exact-root")
    );
    assert_eq!(campaign(&rules, "shop.example.com", "/"), Some("sub-root"));
    assert_eq!(
        campaign(&rules, "a.promo.example.com", "/"),
        Some("deep-sub")
    );
    assert_eq!(
        campaign(&rules, "example.com", "/"),
        Some("any-root"),
        "*.x is not x"
    );
    assert_eq!(campaign(&rules, "other.test", "/"), Some("any-root"));
    assert_eq!(
        campaign(&rules, "promo.example.com", "/admin/users"),
        Some("any-admin"),
        "a longer prefix beats a more specific host"
    );
    assert_eq!(
        campaign(&rules, "promo.example.com", "/admin"),
        Some("exact-root")
    );
}

#[test]
fn hosts_match_without_case_port_or_trailing_dot_however_either_side_writes_them() {
    let rules = routes_and(&format!(
        "  - {{ id: promo, match: {{ host: [Promo.Example.COM.] }}, {ONE_FLOW} }}
  - {{ id: local6, match: {{ host: '[::1]' }}, {ONE_FLOW} }}
  - {{ id: v6, match: {{ host: '2001:db8::8080' }}, {ONE_FLOW} }}
"
    ));
    for host in [
        "promo.example.com",
        "PROMO.example.com:8080",
        "promo.example.com.",
    ] {
        assert_eq!(campaign(&rules, host, "/"), Some("promo"), "{host}");
    }
    assert_eq!(campaign(&rules, "[::1]:8080", "/"), Some("local6"));
    assert_eq!(campaign(&rules, "[::1]", "/"), Some("local6"));
    assert_eq!(campaign(&rules, "[2001:db8::8080]", "/"), Some("v6"));
    assert_eq!(campaign(&rules, "promo.example.org", "/"), None);
}

#[test]
fn no_request_host_matches_only_the_any_host_campaigns() {
    let rules = routes_and(&format!(
        "  - {{ id: named, match: {{ host: promo.example.com }}, {ONE_FLOW} }}
  - {{ id: any, match: {{ host: '*' }}, {ONE_FLOW} }}
"
    ));
    // HTTP/1.0 without Host: the proxy passes an empty host.
    let req = Req::get("", "/").ua(CHROME);
    assert_eq!(decide(&rules, "203.0.113.7", &req).0, Some("any"));
}

#[test]
fn two_campaigns_on_one_host_and_prefix_are_refused_however_the_host_is_spelled() {
    let p = problems_of(&format!(
        "routes:\n  a: {{ respond: {{ body: a }} }}\ncampaigns:
  - {{ id: first, match: {{ host: promo.example.com }}, {ONE_FLOW} }}
  - {{ id: second, match: {{ host: PROMO.example.com. }}, {ONE_FLOW} }}
"
    ));
    assert_problem(
        &p,
        5,
        "campaigns[second].match",
        "campaign \"first\" already matches",
    );
}
