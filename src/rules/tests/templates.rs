//! Redirect targets: what the visitor sent is always percent-encoded where it is inserted.

use super::*;
use crate::rules::{Action, Vars};

/// The URL the visitor is redirected to.
fn redirect(to: &str, keep_query: bool, req: &Req) -> String {
    let rules = rules(&format!(
        "routes:\n  go: {{ redirect: {{ to: \"{to}\", keep_query: {keep_query} }} }}
campaigns:
  - id: spring sale
    flows: [{{ name: all, to: go }}]
"
    ));
    let facts = req.facts();
    let v = visitor("203.0.113.7", facts.user_agent());
    let d = rules.evaluate(&v, &facts);
    let route = rules.route(d.route);
    let Action::Redirect { to, keep_query, .. } = &route.action else {
        panic!("a redirect route");
    };
    let vars = Vars {
        click_id: "0190-ab",
        country: v.country.as_ref().map(|c| c.as_str()),
        asn: v.asn,
        campaign: rules.campaign_id(&d).unwrap_or(""),
        flow: rules.flow_name(&d).unwrap_or(""),
        route: &route.name,
        params: None,
    };
    to.render(&vars, &facts, *keep_query)
}

#[test]
fn what_the_visitor_sent_cannot_end_the_url_or_add_a_header() {
    let req = Req::get(
        "promo.example.com",
        "/?sub1=%0d%0aSet-Cookie:%20x=1&b=<script>",
    );
    let url = redirect(
        "https://shop.example.com/?s={param:sub1}&b={param:b}&c={campaign}&f={flow}&id={click_id}",
        false,
        &req,
    );
    assert_eq!(
        url,
        "https://shop.example.com/?s=%0D%0ASet-Cookie%3A%20x%3D1&b=%3Cscript%3E\
         &c=spring%20sale&f=all&id=0190-ab"
    );
    let url = redirect("/thanks?{query}", false, &req);
    assert!(!url.contains(['\r', '\n', '<', '&']), "{url}");
}

#[test]
fn kept_query_strings_are_appended_before_the_fragment_and_made_safe() {
    let req = Req::get("promo.example.com", "/?gclid=abc&q=a\"b");
    assert_eq!(
        redirect("https://x.example/p?a=1#top", true, &req),
        "https://x.example/p?a=1&gclid=abc&q=a%22b#top"
    );
    assert_eq!(redirect("/thanks", true, &req), "/thanks?gclid=abc&q=a%22b");
    let none = Req::get("promo.example.com", "/");
    assert_eq!(redirect("/thanks", true, &none), "/thanks");
    assert_eq!(
        redirect("/c/{country}/{asn}", false, &none),
        "/c//",
        "unknown values are empty"
    );
}

#[test]
fn a_bad_template_is_a_problem_at_its_route() {
    let bad = |to: &str| {
        problems_of(&format!(
            "routes:\n  go: {{ redirect: {{ to: \"{to}\" }} }}\n"
        ))
    };
    for (to, text) in [
        ("https://x/{nope}", "unknown macro {nope}; known: click_id"),
        ("https://x/{click_id", "unclosed {"),
        ("https://x/a}", "unmatched }"),
        (
            "javascript:alert(1)",
            "must be an http(s) URL or a path starting with /",
        ),
        ("//evil.example/", "which browsers read as another host"),
        ("https://x/{param:}", "unknown macro {param:}"),
        ("https://x/a b", "contains ' '; encode it"),
    ] {
        assert_problem(&bad(to), 2, "routes.go.redirect.to", text);
    }
}
