//! The schema for current ClickHouse (config/clickhouse/flowgate.sql) against a current
//! engine: the one the `chdb` Python package embeds. A real flowgate sends its batches to a
//! receiver in the test; those exact bodies are inserted with the settings of the exact URL,
//! into the schema `flowgate events schema` prints, and every documented query is run.
//! CI installs chdb (.ci/run); elsewhere, without it, the test says so and passes.
//! Also here: `events forget` when ClickHouse does not answer.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::analytics::{self, num, Converting};
use common::*;

/// Every row the collector has received so far, as JSON.
fn rows(collector: &Receiver) -> Vec<serde_json::Value> {
    let posts = collector.received();
    let lines = posts.iter().flat_map(|p| p.body.split(|&b| b == b'\n'));
    let lines = lines.filter(|l| !l.is_empty());
    lines.map(|l| serde_json::from_slice(l).unwrap()).collect()
}

/// Runs a plan on chdb (tests/chdb/run.py); `None` when chdb is not installed here.
fn chdb(plan: &serde_json::Value) -> Option<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chdb/run.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let input = serde_json::to_vec(plan).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chdb: {stderr}"
        );
        println!("{stderr}skipped (CI runs it)");
        return None;
    }
    assert!(out.status.success(), "chdb: {stderr}");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// `/?query=INSERT...&k=v` -> the statement and the settings, as ClickHouse reads them.
fn insert_of(target: &str) -> (String, serde_json::Map<String, serde_json::Value>) {
    let query = target.split_once('?').map_or("", |q| q.1);
    let mut insert = String::new();
    let mut settings = serde_json::Map::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = v.replace("%20", " ");
        match k {
            "query" => insert = v,
            _ => drop(settings.insert(k.to_string(), v.into())),
        }
    }
    (insert, settings)
}

#[test]
fn the_current_schema_answers_the_daily_queries_from_the_rows_flowgate_sends() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let events = format!(
        "events: {{ sink: http, file: {{ retain: 30d }}, http: {{ url: \"http://{}/\", clickhouse: {{}}, spool_dir: spool }}, batch: {{ max_wait: 100ms }} }}\n{}",
        receiver.addr,
        analytics::config()
    );
    let config = setup_with_events(dir.path(), analytics::RULES, &events);
    let fg = spawn(&config);
    let clicks = analytics::visit(fg.addr());
    wait_for(
        "the clicks at the receiver",
        Duration::from_secs(10),
        || rows(&receiver).len() >= clicks,
    );
    let converting = Converting::pick(&rows(&receiver));
    let conversions = converting.report(fg.addr());
    wait_for(
        "the conversions at the receiver",
        Duration::from_secs(10),
        || rows(&receiver).len() >= clicks + conversions,
    );
    let posts: Vec<(String, String)> = (receiver.received().into_iter())
        .map(|p| (p.target, String::from_utf8(p.body).unwrap()))
        .collect();
    for (target, _) in &posts {
        assert_eq!(
            target,
            "/?query=INSERT%20INTO%20flowgate.events%20FORMAT%20JSONEachRow&date_time_input_format=best_effort&input_format_skip_unknown_fields=1"
        );
    }
    let rows = rows(&receiver);
    assert!(
        rows.iter().all(|r| !r.to_string().contains("null")),
        "typed rows have no nulls: {rows:?}"
    );

    let ddl = flowgate_cli(&config, &["events", "schema"]);
    assert!(ddl.status.success(), "{ddl:?}");
    let ddl = String::from_utf8(ddl.stdout).unwrap();
    assert_eq!(
        ddl.matches("INTERVAL 30 DAY").count(),
        3,
        "the TTL is events.file.retain"
    );
    let queries = analytics::named_queries("queries.sql");
    let mut plan = vec![serde_json::json!({ "script": ddl })];
    for (target, body) in &posts {
        let (insert, settings) = insert_of(target);
        plan.push(serde_json::json!({ "insert": insert, "settings": settings, "data": body }));
    }
    for (name, sql) in &queries {
        plan.push(serde_json::json!({ "name": name, "query": sql }));
    }
    let count = |name: &str, sql: &str| serde_json::json!({ "name": name, "query": sql });
    // At least once: a batch sent again collapses in the clicks table (FINAL).
    let (insert, settings) = insert_of(&posts[0].0);
    plan.push(serde_json::json!({ "insert": insert, "settings": settings, "data": posts[0].1 }));
    plan.push(count(
        "final",
        "SELECT count() AS n FROM flowgate.clicks FINAL",
    ));
    plan.push(count(
        "kept",
        "SELECT query['gclid'] AS gclid, click_id, toString(ts) AS ts FROM flowgate.clicks WHERE gclid != '' LIMIT 1",
    ));
    // What `events forget --ip` sends to a current server: lightweight DELETE.
    let ids = format!("('{}')", converting.gb_a);
    let gb_a = format!("ip IN ('{}') OR click_id IN {ids}", analytics::GB_A);
    plan.push(
        serde_json::json!({ "sql": format!("DELETE FROM `flowgate`.`clicks` WHERE {gb_a}") }),
    );
    plan.push(serde_json::json!({ "sql": format!("DELETE FROM `flowgate`.`conversions` WHERE click_id IN {ids}") }));
    plan.push(count(
        "after_forget",
        &format!("SELECT (SELECT count() FROM flowgate.clicks WHERE {gb_a}) + (SELECT count() FROM flowgate.conversions WHERE click_id IN {ids}) AS n, (SELECT count() FROM flowgate.clicks FINAL) AS left"),
    ));
    let Some(answer) = chdb(&serde_json::Value::Array(plan)) else {
        return;
    };
    println!("chdb {}", answer["version"]);

    assert_eq!(
        queries.iter().map(|q| q.0.as_str()).collect::<Vec<_>>(),
        ["traffic", "conversions"]
    );
    analytics::assert_traffic(answer["traffic"].as_array().unwrap());
    let by_source: Vec<(String, [f64; 5])> = answer["conversions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let key = ["campaign", "flow", "source"].map(|k| r[k].as_str().unwrap().to_string());
            let n = [
                "clicks",
                "conversions",
                "conversion_rate",
                "revenue",
                "pending",
            ]
            .map(|k| num(&r[k]));
            (key.join("/"), n)
        })
        .collect();
    let want: Vec<(String, [f64; 5])> = [
        ("spring/bots/fb", [1.0, 0.0, 0.0, 0.0, 0.0]),
        ("spring/rest/fb", [2.0, 0.0, 0.0, 0.0, 0.0]),
        ("spring/uk/fb", [3.0, 1.0, 0.3333, 10.0, 0.0]),
        ("spring/uk/gg", [1.0, 1.0, 1.0, 5.5, 0.0]),
        ("summer/all/", [4.0, 0.0, 0.0, 0.0, 1.0]),
    ]
    .map(|(k, n)| (k.to_string(), n))
    .to_vec();
    assert_eq!(by_source, want);
    assert_eq!(
        num(&answer["final"][0]["n"]),
        clicks as f64,
        "duplicates collapse"
    );
    let kept = &answer["kept"][0];
    assert_eq!(kept["gclid"], "g1", "kept query parameters: {answer}");
    let sent = rows
        .iter()
        .find(|r| r["click_id"] == kept["click_id"])
        .unwrap();
    let ts = sent["ts"]
        .as_str()
        .unwrap()
        .replace('T', " ")
        .replace('Z', "");
    assert_eq!(kept["ts"], ts.as_str(), "milliseconds kept");
    assert_eq!(num(&answer["after_forget"][0]["n"]), 0.0);
    assert_eq!(num(&answer["after_forget"][0]["left"]), (clicks - 3) as f64);
}

#[test]
fn forget_erases_the_files_then_fails_naming_the_clickhouse_that_does_not_answer() {
    let dead = free_port();
    let dir = tempfile::tempdir().unwrap();
    let events = format!(
        "events: {{ sink: file, file: {{ dir: events }}, http: {{ url: \"http://127.0.0.1:{dead}/\", clickhouse: {{}} }}, batch: {{ max_wait: 100ms }} }}\n"
    );
    let config = setup_with_events(dir.path(), &page_rules("ok"), &events);
    let fg = spawn(&config);
    for ip in ["198.51.100.7", "198.51.100.7", "198.51.100.8"] {
        assert_eq!(get(fg.addr(), "/", &[("X-Forwarded-For", ip)]).status, 200);
    }
    let events_dir = dir.path().join("events");
    wait_for("three events written", Duration::from_secs(10), || {
        event_lines(&events_dir).len() == 3
    });
    let out = flowgate_cli(&config, &["events", "forget", "--ip", "198.51.100.7"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}{stderr}");
    // The events first; the state store's line follows.
    assert_eq!(stdout.lines().next(), Some("removed 2 events"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "ClickHouse at http://127.0.0.1:{dead}: unreachable"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("run forget again"), "{stderr}");
    let left = event_lines(&events_dir);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["ip"], "198.51.100.8");
}
