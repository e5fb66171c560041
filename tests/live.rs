//! Live operations on the rules: a change serves within a second, a bad change is refused
//! and the old rules keep serving, `explain` shows a decision, shadow rules are counted. The
//! binary upgrade and the drain are in `handover.rs`.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_rule_change_serves_within_a_second_without_a_signal() {
    let fg = Flowgate::start("", &page_rules("one"));
    let main = fg.rules_dir().join("main.yaml");
    std::fs::write(&main, page_rules("two")).unwrap();
    let took = wait_for("in-place write", Duration::from_secs(1), || {
        fg.get("/", &[]).body == "two"
    });
    println!("in-place write visible after {took:?}");

    // Editors and config managers write a temporary file and rename it over the old one.
    let tmp = fg.rules_dir().join(".main.yaml.tmp");
    std::fs::write(&tmp, page_rules("three")).unwrap();
    std::fs::rename(&tmp, &main).unwrap();
    wait_for("rename over", Duration::from_secs(1), || {
        fg.get("/", &[]).body == "three"
    });
    // The counter moves just after the swap a request can already see.
    wait_for("reloads counted", Duration::from_secs(1), || {
        fg.metric(r#"flowgate_reloads_total{outcome="ok"}"#) >= 2.0
    });
}

#[test]
fn a_swapped_symlinked_rules_folder_is_seen() {
    // As Kubernetes mounts a ConfigMap: rules -> ..data -> a versioned folder, swapped whole.
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), "", &page_rules("unused"));
    let mount = dir.path().join("mount");
    for (v, body) in [("v1", "first"), ("v2", "second")] {
        std::fs::create_dir_all(mount.join(v)).unwrap();
        std::fs::write(mount.join(v).join("main.yaml"), page_rules(body)).unwrap();
    }
    std::os::unix::fs::symlink("v1", mount.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/main.yaml", mount.join("main.yaml")).unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("rules: rules", "rules: mount");
    std::fs::write(&config, text).unwrap();
    let fg = spawn(&config);
    let addr = fg.addr();
    assert_eq!(get(addr, "/", &[]).body, "first");

    std::os::unix::fs::symlink("v2", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    wait_for("symlink swap", Duration::from_secs(2), || {
        get(addr, "/", &[]).body == "second"
    });
}

#[test]
fn bad_changes_are_refused_and_the_old_rules_keep_serving() {
    let fg = Flowgate::start("", &page_rules("good"));
    let main = fg.rules_dir().join("main.yaml");

    std::fs::write(&main, "routes: [unclosed\n").unwrap();
    wait_for("syntax error refused", Duration::from_secs(10), || {
        fg.metric(r#"flowgate_reloads_total{outcome="error"}"#) >= 1.0
    });
    assert_eq!(fg.get("/", &[]).body, "good");

    std::fs::write(&main, page_rules("better")).unwrap();
    std::fs::create_dir_all(fg.rules_dir().join("tests")).unwrap();
    let failing = "- name: everyone gets the old page\n  request: { url: http://x/ }\n  expect: { route: nowhere }\n";
    std::fs::write(fg.rules_dir().join("tests/pages.yaml"), failing).unwrap();
    wait_for("failing rule test refused", Duration::from_secs(10), || {
        fg.metric(r#"flowgate_reloads_total{outcome="error"}"#) >= 2.0
    });
    assert_eq!(fg.get("/", &[]).body, "good");
    assert_eq!(get(fg.admin, "/readyz", &[]).status, 200);
    assert_eq!(fg.metric("flowgate_snapshot_generation"), 1.0);

    std::fs::write(
        fg.rules_dir().join("tests/pages.yaml"),
        failing.replace("nowhere", "page"),
    )
    .unwrap();
    wait_for("fixed test accepted", Duration::from_secs(10), || {
        fg.get("/", &[]).body == "better"
    });
}

#[test]
fn explain_shows_the_decision_and_every_condition() {
    let rules = r#"
routes:
  offer: { respond: { body: offer } }
  safe: { respond: { body: safe } }
campaigns:
  - id: spring
    flows:
      - name: automation
        if: { any: [ { bot: true }, { ip: "203.0.113.0/24" } ] }
        to: safe
      - name: paid
        if: { param: { gclid: present } }
        to: offer
      - { name: rest, to: safe }
"#;
    let fg = Flowgate::start("", rules);
    let ua = "Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)%20AppleWebKit/537.36%20(KHTML,%20like%20Gecko)%20Chrome/124.0.0.0%20Safari/537.36";
    let url = "http%3A%2F%2Fpromo.example.com%2Flp%3Fgclid%3Dx";
    let r = get(
        fg.admin,
        &format!("/explain?url={url}&ip=198.51.100.7&ua={ua}"),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let x = json(&r.body);
    assert_eq!(x["decision"]["flow"], "paid");
    assert_eq!(x["decision"]["route"], "offer");
    assert_eq!(x["visitor"]["ip"], "198.51.100.7");
    let steps: Vec<(String, String, bool)> = x["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["condition"].as_str().unwrap().to_string(),
                s["value"].as_str().unwrap().to_string(),
                s["result"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        steps.contains(&("if.any[0].bot".into(), "false".into(), false)),
        "{steps:?}"
    );
    assert!(
        steps.contains(&("if.any[1].ip".into(), "198.51.100.7".into(), false)),
        "{steps:?}"
    );
    assert!(
        steps.contains(&("if.param".into(), "gclid=x".into(), true)),
        "{steps:?}"
    );
    assert_eq!(get(fg.admin, "/explain?ip=1.2.3.4", &[]).status, 400);

    // The CLI gives the same answer, and replays traffic in batches.
    let config = fg.dir.path().join("flowgate.yaml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["explain", "--batch", "-c"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for i in 0..20_000 {
        let gclid = if i % 2 == 0 { "?gclid=1" } else { "" };
        input.push_str(&format!("{{\"url\": \"http://promo.example.com/{i}{gclid}\", \"ip\": \"198.51.100.{}\", \"ua\": \"{CHROME}\"}}\n", i % 250));
    }
    input.push_str("not json\n");
    let started = Instant::now();
    let mut stdin = cmd.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut out = String::new();
    cmd.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    writer.join().unwrap().unwrap();
    assert!(cmd.wait().unwrap().success());
    println!(
        "explain --batch: 20,000 requests in {:?}",
        started.elapsed()
    );
    let lines: Vec<serde_json::Value> = out.lines().map(json).collect();
    assert_eq!(lines.len(), 20_001);
    assert_eq!(lines[0]["decision"]["route"], "offer");
    assert_eq!(lines[1]["decision"]["route"], "safe");
    assert!(lines[20_000]["error"]
        .as_str()
        .unwrap()
        .contains("line 20001"));
}

#[test]
fn shadow_rules_are_counted_and_never_change_a_response() {
    let dir = tempfile::tempdir().unwrap();
    let shadow = dir.path().join("shadow");
    std::fs::create_dir_all(&shadow).unwrap();
    std::fs::write(
        shadow.join("main.yaml"),
        "routes: { page: { respond: { body: new } }, other: { respond: { body: other } } }\n\
         campaigns: [ { id: c, flows: [ { name: tools, if: { bot: true }, to: other }, { name: f, to: page } ] } ]\n",
    )
    .unwrap();
    let config = write_setup(
        dir.path(),
        &format!("shadow_rules: {}\n", shadow.display()),
        &page_rules("live"),
    );
    let fg = spawn(&config);
    let (addr, admin) = (fg.addr(), fg.admin());
    for _ in 0..3 {
        assert_eq!(get(addr, "/", &[("User-Agent", CHROME)]).body, "live");
    }
    assert_eq!(get(addr, "/", &[("User-Agent", "curl/8")]).body, "live");
    let metrics = get(admin, "/metrics", &[]).body;
    assert!(metrics.contains(r#"flowgate_shadow_decisions_total{campaign="c",live_route="page",shadow_route="page"} 3"#), "{metrics}");
    assert!(metrics.contains(r#"flowgate_shadow_decisions_total{campaign="c",live_route="page",shadow_route="other"} 1"#), "{metrics}");
}
