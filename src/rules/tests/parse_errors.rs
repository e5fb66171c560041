//! A rule file that does not parse: the message names the field, what was expected and what
//! was found, the nearest valid name, and the indentation that fixes a misplaced key. These
//! are the operator's words; each is asserted whole.

use super::*;

/// The one problem a file that does not parse has.
fn only(yaml: &str) -> String {
    let p = problems_of(yaml);
    assert_eq!(p.len(), 1, "{p:#?}");
    p.into_iter().next().unwrap_or_default()
}

#[test]
fn a_type_error_names_the_field_and_what_it_expected() {
    let text =
        "routes:\n  shop: { redirect: { to: \"https://shop.example.com/\", status: abc } }\n";
    assert_eq!(
        only(text),
        "rules/main.yaml:2:64: routes.shop.redirect.status: expected a number 100-599, found \"abc\""
    );
    assert_eq!(
        only("routes:\n  page: { respond: { status: 99999 } }\n"),
        "rules/main.yaml:2:30: routes.page.respond.status: expected a number 100-599, found 99999"
    );
    let flows = "routes: { a: { respond: { body: x } } }\ncampaigns:\n  - id: c\n    flows:\n";
    assert_eq!(
        only(&format!("{flows}      - {{ name: geo, if: {{ asn: [abc] }}, to: a }}\n")),
        "rules/main.yaml:5:34: campaigns[c].flows[geo].if.asn[0]: expected an AS number like 15169, found \"abc\""
    );
    assert_eq!(
        only(&format!("{flows}      - {{ name: geo, if: {{ bot: maybe }}, to: a }}\n")),
        "rules/main.yaml:5:33: campaigns[c].flows[geo].if.bot: expected true or false, found \"maybe\""
    );
    assert_eq!(
        only(&format!("{flows}      - {{ name: split, to: {{ a: half }} }}\n")),
        "rules/main.yaml:5:33: campaigns[c].flows[split].to.a: expected a number 0-4294967295, found \"half\""
    );
}

#[test]
fn unknown_names_get_the_nearest_valid_one() {
    assert_eq!(
        only("routes:\n  safe: { respond: { body: ok, stauts: 200 } }\n"),
        "rules/main.yaml:2:32: routes.safe.respond: unknown field \"stauts\"; did you mean \"status\"?"
    );
    assert_eq!(
        only("routes:\n  shop: { redirec: { to: x } }\n"),
        "rules/main.yaml:2:11: routes.shop: unknown value \"redirec\"; did you mean \"redirect\"?"
    );
    assert_eq!(
        only("routes:\n  shop: { respond: { colour: red } }\n"),
        "rules/main.yaml:2:22: routes.shop.respond: unknown field \"colour\"; expected one of status, body, file, content_type"
    );
    let text = "routes: { a: { respond: { body: x } } }\ncampaigns: [ { id: c, flows: [ { name: f, if: { contry: [US] }, to: a } ] } ]\n";
    assert_eq!(
        only(text),
        "rules/main.yaml:2:49: campaigns[c].flows[f].if: unknown field \"contry\"; did you mean \"country\"?"
    );
}

#[test]
fn a_key_at_the_wrong_indentation_is_pointed_at_with_the_column_that_fixes_it() {
    let head = "routes:\n  safe: { respond: { body: ok } }\ncampaigns:\n  - id: c\n    flows:\n      - name: geo\n";
    // `to` indented under `if`: a key of the condition, where it is unknown.
    assert_eq!(
        only(&format!("{head}        if:\n          country: US\n          to: safe\n")),
        "rules/main.yaml:9:11: campaigns[c].flows[geo].if: unknown field \"to\"; if it belongs to campaigns[c].flows[geo], indent it to column 9, like \"name\" on line 6"
    );
    // `to` at the campaign's level: valid YAML, but the flow lacks it.
    assert_eq!(
        only(&format!("{head}    to: safe\n")),
        "rules/main.yaml:6:9: campaigns[c].flows[geo]: missing field \"to\"; the \"to\" on line 7 is not indented as part of this map: indent it to column 9, like \"name\" on line 6"
    );
    // Between the two: not YAML at all.
    assert_eq!(
        only(&format!("{head}        if: {{ country: US }}\n      to: safe\n")),
        "rules/main.yaml:8:7: while parsing a block collection, did not find expected '-' indicator; indent line 8 to column 9, like \"if\" on line 7"
    );
}

#[test]
fn names_that_are_not_defined_get_the_nearest_defined_one() {
    let text = r#"upstreams:
  landing: { peers: ["127.0.0.1:8081"] }
routes:
  offer: { proxy: { upstream: landng } }
  safe: { respond: { body: ok } }
fallback: saef
campaigns:
  - id: c
    flows:
      - { name: uk, if: { country: [UK, DEU, Germny, XZ] }, to: ofer }
      - { name: dc, if: { ip_list: [datacentre] }, to: safe }
      - { name: vpn, if: { anonymous: [vpm], device: [mobil] }, to: safe }
"#;
    let p = problems_of(text);
    for want in [
        "rules/main.yaml:4:31: routes.offer.proxy.upstream: unknown upstream \"landng\"; did you mean \"landing\"?",
        "rules/main.yaml:6:11: fallback: unknown route \"saef\"; did you mean \"safe\"?",
        "rules/main.yaml:10:25: campaigns[c].flows[uk].if.country: \"UK\" is not an ISO 3166-1 alpha-2 country code; did you mean \"GB\"?",
        "rules/main.yaml:10:25: campaigns[c].flows[uk].if.country: \"DEU\" is not an ISO 3166-1 alpha-2 country code; did you mean \"DE\"?",
        "rules/main.yaml:10:25: campaigns[c].flows[uk].if.country: \"Germny\" is not an ISO 3166-1 alpha-2 country code; did you mean \"DE\"?",
        "rules/main.yaml:10:25: campaigns[c].flows[uk].if.country: \"XZ\" is not an ISO 3166-1 alpha-2 country code",
        "rules/main.yaml:10:65: campaigns[c].flows[uk].to: unknown route \"ofer\"; did you mean \"offer\"?",
        "rules/main.yaml:11:25: campaigns[c].flows[dc].if.ip_list: unknown ip list \"datacentre\" (lists come from intel.lists in the config); did you mean \"datacenter\"?",
        "rules/main.yaml:12:26: campaigns[c].flows[vpn].if.device: unknown value \"mobil\"; did you mean \"mobile\"?",
        "rules/main.yaml:12:26: campaigns[c].flows[vpn].if.anonymous: unknown flag \"vpm\"; did you mean \"vpn\"?",
    ] {
        assert!(p.iter().any(|l| l == want), "{want}\nnot in {p:#?}");
    }
    assert_eq!(p.len(), 10, "{p:#?}");
}
