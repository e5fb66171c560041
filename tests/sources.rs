//! Traffic sources end to end, on the real binary: push traffic reaches the lander, its
//! click carries the source and its params (the email hashed as it was read), and the
//! conversion goes back to the source's postback receiver, which is down for a while, then
//! up: delivered once. Nothing on disk holds the email in clear.

mod common;

use std::path::Path;

use common::*;

fn rules(up: std::net::SocketAddr, receiver_port: u16) -> String {
    format!(
        r#"
upstreams:
  lp: {{ peers: ["{up}"] }}
routes:
  lander: {{ proxy: {{ upstream: lp }} }}
  safe: {{ respond: {{ body: "safe" }} }}
fallback: safe
sources:
  pushnet:
    match: {{ param: {{ src: pushnet }} }}
    params: {{ external_id: clickid, zone: zoneid, email: em }}
    hash: [email]
    postback:
      url: "http://127.0.0.1:{receiver_port}/conv?clickid={{external_id}}&payout={{payout}}&status={{status}}&em={{email}}"
      statuses: [approved]
campaigns:
  - id: spring
    match: {{ host: promo.example.com }}
    flows:
      - name: push
        to: lander
"#
    )
}

const EMAIL: &str = "Ann.Lee@Example.com";

#[test]
fn a_push_click_converts_and_the_source_that_was_down_hears_of_it_once() {
    let up = Upstream::start("lp");
    let port = free_port();
    let fg = Flowgate::start("postback: { path: /postback }", &rules(up.addr, port));
    let r = fg.get(
        "/?src=pushnet&clickid=ext42&zoneid=9&em=%20Ann.Lee%40Example.com",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "203.0.113.5")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = json(&r.body)["headers"]["x-click-id"]
        .as_str()
        .unwrap()
        .to_string();
    let hashed = sha256_hex(&EMAIL.to_lowercase());

    let events = fg.events(1);
    let click = events.iter().find(|e| e["type"] == "click").unwrap();
    assert_eq!(click["source"], "pushnet");
    assert_eq!(click["params"]["external_id"], "ext42");
    assert_eq!(click["params"]["zone"], "9");
    assert_eq!(click["params"]["email"], *hashed);

    let postback = |q: &str| {
        let r = fg.get(&format!("/postback?click_id={id}&{q}"), &[]);
        assert_eq!(r.status, 200, "{}", r.body);
    };
    postback("status=pending&payout=1");
    postback("status=approved&payout=12.5");
    let series =
        |o: &str| format!("flowgate_postbacks_total{{outcome=\"{o}\",source=\"pushnet\"}}");
    wait_for("the source is found down", START, || {
        fg.metric(&series("retrying")) == 1.0
    });
    assert_eq!(fg.metric(&series("filtered")), 1.0);

    let rx = Receiver::start_on(port);
    wait_for("delivered once the source is up", START, || {
        fg.metric(&series("delivered")) == 1.0
    });
    let got = rx.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].target,
        format!("/conv?clickid=ext42&payout=12.5&status=approved&em={hashed}")
    );
    assert!(got[0].headers.contains_key("idempotency-key"));

    // The same conversion again is a repeat: no second forward.
    postback("status=approved&payout=12.5");
    let events = fg.events(1 + 2 + 3);
    let outcomes: Vec<_> = (events.iter())
        .filter(|e| e["type"] == "postback")
        .map(|e| e["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        outcomes,
        ["filtered", "retrying", "delivered"],
        "{events:#?}"
    );
    let conv: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "conversion")
        .collect();
    assert!(conv
        .iter()
        .all(|c| c["source"] == "pushnet" && c["campaign"] == "spring"));
    assert_eq!(rx.received().len(), 1);

    // In clear nowhere: not in the events, the click store, or the postback spool.
    for needle in [EMAIL, &EMAIL.to_lowercase(), "Ann.Lee%40"] {
        assert!(
            !tree_holds(fg.dir.path(), needle.as_bytes()),
            "{needle} found under {}",
            fg.dir.path().display()
        );
    }
    assert!(tree_holds(&fg.dir.path().join("state"), hashed.as_bytes()));
}

fn sha256_hex(s: &str) -> String {
    flowgate::rules::sources::hash_value(s).unwrap()
}

/// Whether any file under `dir` (but the rules, which name no visitor) holds `needle`.
fn tree_holds(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let p = e.path();
            if p.is_dir() {
                return p.file_name().is_none_or(|n| n != "rules") && tree_holds(&p, needle);
            }
            std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        })
}

#[test]
fn the_worked_example_in_config_examples_compiles() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/push-sources.yaml");
    std::fs::write(
        dir.path().join("sources.yaml"),
        std::fs::read(example).unwrap(),
    )
    .unwrap();
    for var in [
        "META_CAPI_TOKEN",
        "GOOGLE_ADS_TOKEN",
        "GOOGLE_ADS_DEVELOPER_TOKEN",
    ] {
        std::env::set_var(var, "placeholder");
    }
    let intel = flowgate::identity::Intel::default();
    let rules = flowgate::rules::load(dir.path(), &intel).unwrap_or_else(|p| panic!("{p}"));
    let names: Vec<&str> = rules.sources.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["pushnet", "meta", "gads"]);
    assert!(rules.sources.iter().all(|s| s.postback.is_some()));
}

#[test]
fn check_refuses_to_keep_a_hashed_parameter_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let rules = "sources:\n  meta:\n    params: { email: em }\n    hash: [email]\n";
    let config = write_setup(dir.path(), "privacy: { query_params: [utm_*, e*] }", rules);
    let (code, text) = flowgate_said(&config, &["check"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("privacy.query_params"), "{text}");
    assert!(text.contains("sources.meta hashes"), "{text}");
}

#[test]
fn forget_erases_the_visitors_conversions_waiting_for_a_source_that_is_down() {
    let up = Upstream::start("lp");
    let port = free_port();
    let mut fg = Flowgate::start("postback: { path: /postback }", &rules(up.addr, port));
    let r = fg.get(
        "/?src=pushnet&clickid=ext7&zoneid=9&em=a%40b.example",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "203.0.113.9")],
    );
    let id = json(&r.body)["headers"]["x-click-id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = fg.get(&format!("/postback?click_id={id}&status=approved"), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let retrying = r#"flowgate_postbacks_total{outcome="retrying",source="pushnet"}"#;
    wait_for("the source is found down", START, || {
        fg.metric(retrying) == 1.0
    });
    fg.events(2);
    fg.signal("TERM");
    assert!(fg.process.wait().success());
    let spool = fg.dir.path().join("state/postbacks");
    assert!(
        tree_holds(&spool, id.as_bytes()),
        "the job waits in the spool"
    );

    let said = fg.forget(&["--ip", "203.0.113.9"]);
    assert!(said.contains("removed 1 postback jobs"), "{said}");
    assert!(!tree_holds(&spool, id.as_bytes()), "the job is gone");
}
