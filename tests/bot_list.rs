//! `intel.bots.list`: bot patterns fetched by `flowgate intel update` from a real local HTTP
//! server, served after the reload; a bad list is refused and what served goes on serving.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// A browser-shaped user agent no built-in pattern knows.
const NEW_CRAWLER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Zqxw/1.0";

fn update(config: &Path) -> (Option<i32>, String) {
    flowgate_said(config, &["intel", "update"])
}

#[test]
fn a_fetched_bot_list_serves_and_a_bad_one_is_refused() {
    let json = br#"[{"pattern": "Zqxw\\/", "url": "https://example.com", "instances": []}]"#;
    let server = serve_files(vec![
        ("/crawler-user-agents.json", json.to_vec()),
        (
            "/bad.txt",
            b"# one good, one bad\nGoodbot\n(unclosed\n".to_vec(),
        ),
    ]);
    let data = tempfile::tempdir().unwrap();
    let list = data.path().join("bots.json");
    let rules = "routes: { bot: { respond: { body: bot } }, human: { respond: { body: human } } }\n\
                 campaigns: [ { id: c, flows: [ { name: bots, if: { bot: true }, to: bot }, { name: rest, to: human } ] } ]\n";
    let intel = |url: &str| {
        format!(
            "intel: {{ bots: {{ list: {{ file: {}, url: \"http://{server}{url}\" }} }} }}\n",
            list.display()
        )
    };
    let fg = Flowgate::start(&intel("/crawler-user-agents.json"), rules);
    let config = fg.dir.path().join("flowgate.yaml");
    let seen = |ua: &str| fg.get("/", &[("User-Agent", ua)]).body;
    assert_eq!(
        seen(NEW_CRAWLER),
        "human",
        "no list file yet: the built-in list serves"
    );
    assert_eq!(
        seen("Mozilla/5.0 (compatible; GPTBot/1.2; +https://openai.com/gptbot)"),
        "bot"
    );

    let (code, text) = update(&config);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("intel.bots.list: updated"), "{text}");
    wait_for("the list serves", Duration::from_secs(10), || {
        seen(NEW_CRAWLER) == "bot"
    });

    // A list that does not compile, fetched: refused, the old file kept.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("/crawler-user-agents.json", "/bad.txt"),
    )
    .unwrap();
    let (code, text) = update(&config);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("intel.bots.list") && text.contains("line 3: bad regex \"(unclosed\""),
        "{text}"
    );
    assert_eq!(std::fs::read(&list).unwrap(), json, "the old file stays");

    // The same list written over the file by hand: the reload is refused and the snapshot
    // that served goes on serving.
    let errors = fg.metric(r#"flowgate_reloads_total{outcome="error"}"#);
    std::fs::write(&list, "Goodbot\n(unclosed\n").unwrap();
    wait_for("refused", Duration::from_secs(10), || {
        fg.metric(r#"flowgate_reloads_total{outcome="error"}"#) > errors
    });
    assert_eq!(seen(NEW_CRAWLER), "bot");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout).to_string()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(
        said.contains("intel.bots.list") && said.contains("bots.json: line 2: bad regex"),
        "check names the key, the file and the line: {said}"
    );
}
