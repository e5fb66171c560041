//! `flowgate check`: every problem, with file and line, and a non-zero exit.

mod common;

use std::process::Command;

use common::*;

fn check(config: &std::path::Path) -> (i32, String) {
    let (code, text) = flowgate_said(config, &["check"]);
    (code.unwrap_or(-1), text)
}

#[test]
fn the_bundled_config_is_valid() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flowgate.yaml");
    let (code, text) = check(&config);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok"), "{text}");
}

#[test]
fn check_lists_every_problem_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = r#"
upstreams:
  landing: { peers: ["127.0.0.1:8081"] }
routes:
  offer: { proxy: { upstream: landng } }
  shop: { redirect: { to: "https://x.example/?c={contry}", status: 200 } }
campaigns:
  - id: spring
    flows:
      - name: geo
        if: { country: [US, XZ] }
        to: ofer
      - name: bots
        if: { ua: "(unclosed" }
        to: offer
      - name: lists
        if: { ip_list: [tor] }
        to: offer
"#;
    let config = write_setup(dir.path(), "", rules);
    let (code, text) = check(&config);
    assert_eq!(code, 1, "{text}");
    let file = dir.path().join("rules/main.yaml").display().to_string();
    for (line, needle) in [
        (5, "unknown upstream \"landng\""),
        (6, "200 is not a redirect status"),
        (6, "unknown macro {contry}"),
        (11, "\"XZ\" is not an ISO 3166-1 alpha-2 country code"),
        (12, "unknown route \"ofer\""),
        (14, "bad regex"),
        (17, "unknown ip list \"tor\""),
    ] {
        let found = text
            .lines()
            .any(|l| l.starts_with(&format!("{file}:{line}:")) && l.contains(needle));
        assert!(found, "expected {file}:{line}: ... {needle}\n{text}");
    }
    assert!(text.contains("7 problem(s)"), "{text}");
}

#[test]
fn unknown_keys_and_bad_yaml_are_reported_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = "routes:\n  a: { respond: { body: x } }\ncampaigns:\n  - id: c\n    flows:\n      - name: f\n        if: { contry: [US] }\n        to: a\n";
    let config = write_setup(dir.path(), "", rules);
    let (code, text) = check(&config);
    assert_eq!(code, 1);
    assert!(
        text.contains("main.yaml:7:") && text.contains("contry"),
        "{text}"
    );

    std::fs::write(dir.path().join("rules/main.yaml"), "routes: [unclosed\n").unwrap();
    let (code, text) = check(&config);
    assert_eq!(code, 1);
    assert!(text.contains("main.yaml:"), "{text}");

    let config = write_setup(dir.path(), "listen_on: 1\n", "");
    let (code, text) = check(&config);
    assert_eq!(code, 1);
    assert!(
        text.contains("flowgate.yaml:") && text.contains("listen_on"),
        "{text}"
    );
}

#[test]
fn names_defined_twice_across_files_name_both_places() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(
        dir.path(),
        "",
        "routes:\n  safe: { respond: { body: a } }\ncampaigns: [ { id: c, flows: [ { name: f, to: safe } ] } ]\n",
    );
    std::fs::write(
        dir.path().join("rules/other.yaml"),
        "routes:\n  safe: { respond: { body: b } }\n",
    )
    .unwrap();
    let (code, text) = check(&config);
    assert_eq!(code, 1);
    assert!(
        text.contains("other.yaml:2:") && text.contains("main.yaml:2"),
        "{text}"
    );
}

#[test]
fn unreadable_data_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad_db = dir.path().join("broken.mmdb");
    std::fs::write(&bad_db, b"this is not a database").unwrap();
    let extra = format!(
        "intel:\n  country: {}\n  lists: {{ tor: missing.txt }}\n",
        bad_db.display()
    );
    let config = write_setup(dir.path(), &extra, "campaigns: []\n");
    let (code, text) = check(&config);
    assert_eq!(code, 1);
    assert!(
        text.contains("broken.mmdb") && text.contains("not a valid MaxMind database"),
        "{text}"
    );
    assert!(
        text.contains("missing.txt") && text.contains("cannot read"),
        "{text}"
    );
}

#[test]
fn flowgate_refuses_to_start_on_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(
        dir.path(),
        "",
        "campaigns: [ { id: c, flows: [ { name: f, to: nowhere } ] } ]\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown route \"nowhere\""));
}

#[test]
fn an_empty_rule_file_is_refused_not_read_as_no_rules() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), "", "# being written\n\n");
    let (code, text) = check(&config);
    assert_eq!(code, 1);
    assert!(
        text.contains("main.yaml") && text.contains("empty rule file"),
        "{text}"
    );
    std::fs::write(dir.path().join("rules/main.yaml"), "{}\n").unwrap();
    let (code, text) = check(&config);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn schedule_conditions_are_checked_and_rule_tests_can_pin_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let rules = "routes: { live: { respond: { body: live } }, closed: { respond: { body: closed } } }\n\
                 campaigns: [ { id: c, flows: [ { name: office, if: { schedule: { days: [mon, tue, wed, thu, fri], hours: \"09:00-17:30\", tz: \"+01:00\" } }, to: live }, { name: rest, to: closed } ] } ]\n";
    let config = write_setup(dir.path(), "", rules);
    std::fs::create_dir_all(dir.path().join("rules/tests")).unwrap();
    std::fs::write(
        dir.path().join("rules/tests/hours.yaml"),
        "- { name: monday morning, request: { url: http://x/, at: \"2026-11-23T09:30:00+01:00\" }, expect: { flow: office } }\n\
         - { name: sunday, request: { url: http://x/, at: \"2026-11-22T12:00:00Z\" }, expect: { flow: rest } }\n",
    )
    .unwrap();
    let (code, text) = check(&config);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 rule tests passed"), "{text}");

    std::fs::write(
        dir.path().join("rules/main.yaml"),
        rules
            .replace("tz: \\\"+01:00\\\"", "tz: \\\"Europe/Berlin\\\"")
            .replace("\"09:00-17:30\"", "\"9 to 5\""),
    )
    .unwrap();
    let (code, text) = check(&config);
    assert_eq!(code, 1);
    assert!(
        text.contains("schedule") && text.contains("not a window"),
        "{text}"
    );
}

#[test]
fn limits_out_of_range_are_refused_each_by_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(
        dir.path(),
        "limits: { max_header_bytes: 1KiB, idle_timeout: 0s, tunnel_idle_timeout: 0s, requests_per_connection: 0 }\n",
        "routes: { page: { respond: { body: ok } } }\ncampaigns: [ { id: c, flows: [ { name: f, to: page } ] } ]\n",
    );
    let (code, text) = check(&config);
    assert_eq!(code, 1, "{text}");
    for field in [
        "limits.max_header_bytes",
        "limits.idle_timeout",
        "limits.tunnel_idle_timeout",
        "limits.requests_per_connection",
    ] {
        assert!(text.contains(field), "{field} in {text}");
    }
    assert!(!text.contains("limits.header_timeout"), "{text}");
}

#[test]
fn a_rate_must_name_the_visitor_and_allow_something() {
    let dir = tempfile::tempdir().unwrap();
    let rules = "routes: { page: { respond: { body: ok } } }\ncampaigns: [ { id: c, flows: [ \
                 { name: a, if: { rate: { per: host, max: 5, window: 1s } }, to: page }, \
                 { name: b, if: { rate: { per: ip, max: 0, window: 1s } }, to: page } ] } ]\n";
    let config = write_setup(dir.path(), "", rules);
    let (code, text) = check(&config);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("flows[a].if.rate: per"), "{text}");
    assert!(text.contains("flows[b].if.rate: max"), "{text}");
}

#[test]
fn every_stage_is_checked_and_a_tls_error_hides_no_rule_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("afile"), "").unwrap();
    let rules = "routes: { page: { respond: { body: ok } } }\ncampaigns: [ { id: c, flows: [ { name: f, to: pgae } ] } ]\n";
    let events = "events: { sink: file, file: { dir: afile/events } }\n\
                  tls: [ { listen: \"127.0.0.1:0\", cert: no.pem, key: no.key } ]\n\
                  intel: { country: data/GeoLite2-Country.mmdb, asn: { file: data/asn.mmdb, url: \"https://example.com/asn.mmdb\" } }\n";
    let config = setup_with_events(dir.path(), rules, events);
    let (code, text) = check(&config);
    assert_eq!(code, 1, "{text}");
    for line in [
        format!("{d}/flowgate.yaml: events.file.dir: cannot create {d}/afile/events: {d}/afile is not a folder"),
        format!("{d}/flowgate.yaml:8:19: intel.country: cannot read {d}/data/GeoLite2-Country.mmdb: no such file; give it a url and `flowgate intel update` fetches it"),
        format!("{d}/flowgate.yaml:8:52: intel.asn: cannot read {d}/data/asn.mmdb: no such file; `flowgate intel update` fetches it"),
        format!("{d}/rules/main.yaml:2:47: campaigns[c].flows[f].to: unknown route \"pgae\"; did you mean \"page\"?"),
        format!("{d}/flowgate.yaml: config ok, tls 1 problem(s), folders 1 problem(s), intel data 2 problem(s), rules 1 problem(s), rule tests not run"),
        format!("{d}/flowgate.yaml: 5 problem(s)"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\nnot in\n{text}");
    }
    let tls = format!("{d}/flowgate.yaml:7:39: tls[0].cert: cannot read {d}/no.pem: no such file");
    assert!(text.lines().any(|l| l == tls), "{tls}\nnot in\n{text}");
}

#[test]
fn a_type_error_says_what_the_field_expected() {
    let dir = tempfile::tempdir().unwrap();
    let rules =
        "routes:\n  shop: { redirect: { to: \"https://shop.example.com/\", status: abc } }\n";
    let config = write_setup(dir.path(), "", rules);
    let (code, text) = check(&config);
    assert_eq!(code, 1, "{text}");
    let want = format!(
        "{}/rules/main.yaml:2:64: routes.shop.redirect.status: expected a number 100-599, found \"abc\"",
        dir.path().display()
    );
    assert!(text.lines().any(|l| l == want), "{want}\nnot in\n{text}");
}

/// `flowgate` with `args`, the environment variable `FLOWGATE_TEST_UNSET` surely unset.
fn flowgate(args: &[&str], config: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(args)
        .arg("-c")
        .arg(config)
        .env_remove("FLOWGATE_TEST_UNSET")
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), said(&out))
}

#[test]
fn an_unset_secret_fails_only_where_it_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let rules = "routes: { page: { respond: { body: ok } } }\ncampaigns: [ { id: c, flows: [ { name: f, to: page } ] } ]\n";
    let http = "http: { url: \"http://127.0.0.1:9/\", spool_dir: spool, headers: { authorization: { env: FLOWGATE_TEST_UNSET } } }";
    // Where the secret is written: its line and column in the config.
    let message = |config: &std::path::Path| {
        let text = std::fs::read_to_string(config).unwrap();
        let (n, line) = (text.lines().enumerate())
            .find(|(_, l)| l.contains("FLOWGATE_TEST_UNSET"))
            .unwrap();
        let col = line.find("{ env").unwrap() + 1;
        format!("{d}/flowgate.yaml:{}:{col}: events.http.headers.authorization: environment variable FLOWGATE_TEST_UNSET is not set", n + 1)
    };

    // The file sink sends no headers: check warns, and passes.
    let config = setup_with_events(
        dir.path(),
        rules,
        &format!("events: {{ sink: file, file: {{ dir: events }}, {http} }}\n"),
    );
    let (code, text) = flowgate(&["check"], &config);
    assert_eq!(code, 0, "{text}");
    let warning = format!("warning: {}", message(&config));
    assert!(text.lines().any(|l| l == warning), "{text}");

    // The http sink sends it: run would refuse, so check fails.
    let config = setup_with_events(
        dir.path(),
        rules,
        &format!("events: {{ sink: http, {http} }}\n"),
    );
    let (code, text) = flowgate(&["check"], &config);
    assert_eq!(code, 1, "{text}");
    let message = message(&config);
    assert!(text.lines().any(|l| l == message), "{text}");
    let (code, text) = flowgate(&["run"], &config);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&message), "{text}");

    // Forgetting a visitor sends nothing: no secret is needed.
    std::fs::create_dir_all(dir.path().join("spool")).unwrap();
    std::fs::write(
        dir.path().join("spool/batch-1.ndjson"),
        "{\"type\":\"click\",\"click_id\":\"a\",\"ip\":\"192.0.2.1\"}\n{\"type\":\"click\",\"click_id\":\"b\",\"ip\":\"192.0.2.2\"}\n",
    )
    .unwrap();
    let (code, text) = flowgate(&["events", "forget", "--ip", "192.0.2.1"], &config);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("removed 1 events"), "{text}");
}
