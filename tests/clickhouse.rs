//! flowgate and Debian's real clickhouse-server (18.16), with the fallback schema: the outage
//! (the server killed mid-run and restarted, every answered request's click there exactly
//! once), the typed inserts of the `clickhouse:` block answering the documented queries, and
//! `events forget` erasing there. CI installs clickhouse-server; elsewhere, without it, these
//! tests say so and pass.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::analytics::{self, num, Converting};
use common::clickhouse::ClickHouse;
use common::*;

#[test]
fn every_click_reaches_clickhouse_exactly_once_across_an_outage() {
    if !ClickHouse::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut ch = ClickHouse::start(&dir.path().join("clickhouse"));
    ch.load(&analytics::shipped("flowgate-18.16.sql"));

    let upstream = Upstream::start("landing");
    let rules = format!(
        "upstreams: {{ landing: {{ peers: [\"{}\"] }} }}\nroutes: {{ page: {{ proxy: {{ upstream: landing }} }} }}\n\
         campaigns: [ {{ id: c, flows: [ {{ name: f, to: page }} ] }} ]\n",
        upstream.addr
    );
    let fg_dir = dir.path().join("flowgate");
    let url = format!(
        "http://127.0.0.1:{}/?query=INSERT INTO flowgate.clicks FORMAT JSONEachRow&date_time_input_format=best_effort&input_format_skip_unknown_fields=1",
        ch.http
    );
    let events = format!(
        "events: {{ sink: http, http: {{ url: \"{url}\", spool_dir: spool, retries: 1, timeout: 2s }}, batch: {{ max_wait: 200ms }} }}\n"
    );
    let config = setup_with_events(&fg_dir, &rules, &events);
    let fg = spawn(&config);
    let (addr, admin) = (fg.addr(), fg.admin());

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let traffic = {
        let (stop, answered) = (stop.clone(), answered.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = get(addr, "/", &[("User-Agent", CHROME)]);
                assert_eq!(r.status, 200, "{}", r.body);
                let seen = json(&r.body);
                answered
                    .lock()
                    .unwrap()
                    .push(seen["headers"]["x-click-id"].as_str().unwrap().to_string());
                // A steady trickle of visitors, not a flood.
                pace(Duration::from_millis(5));
            }
        })
    };
    let counted = |outcome: &str| {
        metric_at(
            admin,
            &format!("flowgate_events_total{{outcome=\"{outcome}\"}}"),
        )
    };
    wait_for("clicks reach clickhouse", Duration::from_secs(20), || {
        counted("sent") >= 20.0
    });
    ch.kill();
    wait_for("the outage spools events", Duration::from_secs(30), || {
        counted("spooled") >= 20.0
    });
    let spooled = counted("spooled");
    ch.restart();
    wait_for("the spool replays", Duration::from_secs(60), || {
        counted("replayed") > 0.0
    });
    let sent = counted("sent");
    wait_for(
        "clicks sent after the outage",
        Duration::from_secs(20),
        || counted("sent") >= sent + 20.0,
    );
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();

    let answered: HashSet<String> = answered.lock().unwrap().iter().cloned().collect();
    let count = || {
        ch.query("SELECT count() FROM flowgate.clicks FINAL WHERE type = 'click'")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };
    wait_for("every click in ClickHouse", Duration::from_secs(60), || {
        count() >= answered.len()
    });
    let stored = ch
        .query("SELECT click_id FROM flowgate.clicks FINAL WHERE type = 'click' FORMAT TSV")
        .unwrap();
    let stored: Vec<&str> = stored.lines().collect();
    let unique: HashSet<String> = stored.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        stored.len(),
        unique.len(),
        "after deduplication each click is there once"
    );
    let missing: Vec<_> = answered.difference(&unique).collect();
    assert!(
        missing.is_empty(),
        "{} answered clicks missing",
        missing.len()
    );
    println!(
        "{} clicks answered, {spooled} spooled during the outage, {} replayed; all in ClickHouse once",
        answered.len(),
        metric_at(admin, r#"flowgate_events_total{outcome="replayed"}"#)
    );
}

#[test]
fn the_fallback_schema_takes_typed_inserts_answers_the_daily_queries_and_forgets() {
    if !ClickHouse::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ch = ClickHouse::start(&dir.path().join("clickhouse"));
    let url = format!("http://127.0.0.1:{}/", ch.http);
    let events = format!(
        "events: {{ sink: http, http: {{ url: \"{url}\", clickhouse: {{ table: clicks }}, spool_dir: spool, retries: 1, timeout: 2s }}, batch: {{ max_wait: 100ms }} }}\n{}",
        analytics::config()
    );
    let config = setup_with_events(&dir.path().join("flowgate"), analytics::RULES, &events);
    // The schema as the operator gets it, loaded into the real server.
    let ddl = flowgate_cli(&config, &["events", "schema", "--fallback"]);
    assert!(ddl.status.success(), "{ddl:?}");
    ch.load(&String::from_utf8(ddl.stdout).unwrap());

    let fg = spawn(&config);
    let clicks = analytics::visit(fg.addr());
    let stored = |sql: &str| {
        num(&ch.rows(&format!(
            "SELECT count() AS n FROM flowgate.clicks WHERE {sql}"
        ))[0]["n"])
    };
    wait_for("the clicks in ClickHouse", Duration::from_secs(20), || {
        stored("type = 'click'") as usize >= clicks
    });
    let rows = ch
        .rows("SELECT click_id, campaign, flow, ip, bot FROM flowgate.clicks WHERE type = 'click'");
    let converting = Converting::pick(&rows);
    let conversions = converting.report(fg.addr());
    wait_for(
        "the conversions in ClickHouse",
        Duration::from_secs(20),
        || stored("type = 'conversion'") as usize >= conversions,
    );
    let ts = ch.rows("SELECT toString(ts) AS ts FROM flowgate.clicks LIMIT 1");
    assert!(
        !ts[0]["ts"].as_str().unwrap().is_empty(),
        "typed ts: {ts:?}"
    );

    let queries = analytics::named_queries("queries-18.16.sql");
    assert_eq!(
        queries.iter().map(|q| q.0.as_str()).collect::<Vec<_>>(),
        ["traffic", "conversions"]
    );
    analytics::assert_traffic(&ch.rows(&queries[0].1));
    let by_flow: Vec<(String, f64, f64, f64, f64, f64)> = ch
        .rows(&queries[1].1)
        .iter()
        .map(|r| {
            let key = format!(
                "{}/{}",
                r["campaign"].as_str().unwrap(),
                r["flow"].as_str().unwrap()
            );
            let n = |k: &str| num(&r[k]);
            (
                key,
                n("clicks"),
                n("conversions"),
                n("conversion_rate"),
                n("revenue"),
                n("pending"),
            )
        })
        .collect();
    let want: Vec<(String, f64, f64, f64, f64, f64)> = [
        ("spring/bots", 1.0, 0.0, 0.0, 0.0, 0.0),
        ("spring/rest", 2.0, 0.0, 0.0, 0.0, 0.0),
        ("spring/uk", 4.0, 2.0, 0.5, 15.5, 0.0),
        ("summer/all", 4.0, 0.0, 0.0, 0.0, 1.0),
    ]
    .map(|(k, a, b, c, d, e)| (k.to_string(), a, b, c, d, e))
    .to_vec();
    assert_eq!(by_flow, want);

    // Erasure: a visitor by address (their clicks and, through the click ids, conversions),
    // then one click by id; every other row stays.
    let total = stored("1");
    let gb_a = stored(&format!(
        "ip = '{}' OR click_id = '{}'",
        analytics::GB_A,
        converting.gb_a
    ));
    let out = flowgate_cli(&config, &["events", "forget", "--ip", analytics::GB_A]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(&format!("removed {gb_a} rows from ClickHouse at http://127.0.0.1:{} flowgate.clicks (ALTER TABLE ... DELETE)", ch.http)),
        "{stdout}"
    );
    assert_eq!(
        stored(&format!(
            "ip = '{}' OR click_id = '{}'",
            analytics::GB_A,
            converting.gb_a
        )),
        0.0
    );
    assert_eq!(stored("1"), total - gb_a);
    let out = flowgate_cli(
        &config,
        &["events", "forget", "--click-id", &converting.gb_b],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stored(&format!("click_id = '{}'", converting.gb_b)), 0.0);
    assert_eq!(
        stored("1"),
        total - gb_a - 2.0,
        "GB_B's click and its conversion"
    );
}
