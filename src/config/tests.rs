//! What validation proves is kept: secrets and the client-IP header are read once, at load.

use super::*;

fn load(yaml: &str) -> (tempfile::TempDir, Result<Config, Problems>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let path = dir.path().join("flowgate.yaml");
    std::fs::write(
        &path,
        format!("rules: rules\nevents: {{ sink: none }}\n{yaml}"),
    )
    .unwrap();
    let config = Config::load(&path);
    (dir, config)
}

#[test]
fn a_postback_token_is_read_once_and_kept_when_its_file_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("pb-token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let yaml = format!(
        "postback: {{ path: /pb, token: {{ file: {} }} }}\n",
        token.display()
    );
    let (_d, config) = load(&yaml);
    let config = config.unwrap();
    std::fs::remove_file(&token).unwrap();
    let pb = config.postback.as_ref().unwrap();
    assert_eq!(pb.resolved_token(), Some("t0ken"));
}

#[test]
fn a_token_that_cannot_be_read_refuses_the_config() {
    let (_d, config) = load("postback: { path: /pb, token: { env: FLOWGATE_TEST_UNSET_TOKEN } }\n");
    let problems = config.unwrap_err().to_string();
    assert!(problems.contains("postback.token"), "{problems}");
    assert!(
        problems.contains("FLOWGATE_TEST_UNSET_TOKEN is not set"),
        "{problems}"
    );
}

#[test]
fn the_client_ip_header_is_parsed_once_and_a_bad_one_is_a_problem() {
    let (_d, config) = load("client_ip_header: CF-Connecting-IP\n");
    let want = ClientIpHeader::Single(http::HeaderName::from_static("cf-connecting-ip"));
    assert_eq!(config.unwrap().client_ip_source(), &want);
    let (_d, config) = load("");
    assert_eq!(
        config.unwrap().client_ip_source(),
        &ClientIpHeader::XForwardedFor
    );
    let (_d, config) = load("client_ip_header: \"not a header\"\n");
    let problems = config.unwrap_err().to_string();
    assert!(problems.contains("client_ip_header"), "{problems}");
    assert!(
        problems.contains("is not a valid header name"),
        "{problems}"
    );
}

#[test]
fn bot_patterns_are_compiled_once_at_load_and_every_bad_one_is_named() {
    let (_d, config) =
        load("intel: { bots: { add: [\"(?i)acmeprobe\"], allow: [\"^curl/8\"] } }\n");
    let config = config.unwrap();
    let mut problems = Problems::new();
    let ua = config.intel.classifier(&mut problems);
    assert!(problems.is_empty(), "{problems}");
    assert!(ua.classify(Some("AcmeProbe/1.0")).bot);
    assert!(!ua.classify(Some("curl/8.5.0")).bot);

    let (_d, config) = load("intel: { bots: { add: [\"(unclosed\", ok], allow: [\"[\"] } }\n");
    let problems = config.unwrap_err().to_string();
    // A regex error spans several lines: count the problems by their message.
    assert_eq!(problems.matches("bad regex").count(), 2, "{problems}");
    assert!(
        problems.contains(": intel.bots.add: bad regex \"(unclosed\": "),
        "{problems}"
    );
    assert!(
        problems.contains(": intel.bots.allow: bad regex \"[\": "),
        "{problems}"
    );
}

#[test]
fn a_clickhouse_block_refuses_an_insert_url_and_names_that_are_not_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let path = dir.path().join("flowgate.yaml");
    let yaml = "rules: rules\nevents:\n  sink: http\n  http:\n    url: \"http://127.0.0.1:8123/?query=INSERT INTO t FORMAT JSONEachRow\"\n    clickhouse: { database: \"a-b\", table: \"t; DROP\" }\n";
    std::fs::write(&path, yaml).unwrap();
    let problems = Config::load(&path).unwrap_err().to_string();
    let file = path.display();
    assert!(
        problems.contains(&format!(
            "{file}:5:10: events.http.url: with events.http.clickhouse the url is the server's"
        )),
        "{problems}"
    );
    assert!(
        problems.contains(&format!(
            "{file}:6:29: events.http.clickhouse.database: \"a-b\" is not a ClickHouse name"
        )),
        "{problems}"
    );
    assert!(
        problems.contains("events.http.clickhouse.table: \"t; DROP\""),
        "{problems}"
    );
}
