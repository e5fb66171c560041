//! Several flowgate nodes on one shared store: two real flowgate processes and a real
//! redis-server, started by each test on free loopback ports. Caps hold exactly across the
//! nodes, a cookie one node set is honoured by the other, a Redis that goes away leaves
//! flowgate serving (and counting the errors) until it is back, and `events forget` erases
//! the visitor from Redis.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A loaded CI machine may take a while to answer on loopback: the tests that count exactly
/// give the store time; the outage test keeps the short default.
fn state(redis: &RedisServer, deadline: &str) -> String {
    format!(
        "state: {{ redis: \"{}\", deadline: {deadline} }}\n",
        redis.url()
    )
}

fn node(redis: &RedisServer, rules: &str, deadline: &str) -> Flowgate {
    Flowgate::start_with_state("", rules, &state(redis, deadline))
}

fn visit(addr: std::net::SocketAddr, ip: &str, cookie: Option<&str>) -> Reply {
    let mut h = vec![("User-Agent", CHROME), ("X-Forwarded-For", ip)];
    if let Some(c) = cookie {
        h.push(("Cookie", c));
    }
    get(addr, "/", &h)
}

const ERRORS: &str = "flowgate_state_errors_total";

#[test]
fn two_nodes_on_one_redis_serve_exactly_ten_offers_of_a_cap_of_ten_to_thirty_visitors() {
    let redis = RedisServer::start();
    let a = node(&redis, CAPPED_RULES, "500ms");
    let b = node(&redis, CAPPED_RULES, "500ms");
    let addrs = [a.addr, b.addr];
    let offers = thirty_at_once(move |n, ip| visit(addrs[n % 2], ip, None).body == "offer");
    assert_eq!(offers, 10, "exactly the cap, over both nodes");
    let served = |fg: &Flowgate| {
        fg.metric(r#"flowgate_requests_total{campaign="spring",flow="capped",route="offer",status_class="2xx",visitor="human"}"#)
    };
    assert_eq!(served(&a) + served(&b), 10.0);
    assert!(
        served(&a) > 0.0 && served(&b) > 0.0,
        "both nodes served some"
    );
    let caps = redis.keys("fg:cap:*");
    assert_eq!(caps.len(), 1, "{caps:?}");
    let count: u32 = redis::cmd("GET")
        .arg(&caps[0])
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(count, 10);
    assert_eq!(a.metric(ERRORS) + b.metric(ERRORS), 0.0);
}

#[test]
fn a_cookie_one_node_set_is_honoured_by_the_other_and_so_is_a_cookieless_visitor() {
    let redis = RedisServer::start();
    let a = node(&redis, UNIQUE_RULES, "500ms");
    let b = node(&redis, UNIQUE_RULES, "500ms");
    let first = visit(a.addr, "203.0.113.1", None);
    assert_eq!(first.body, "offer");
    let cookie = first.header("set-cookie").expect("a visitor cookie");
    let cookie = cookie.split(';').next().unwrap().to_string();
    // Node B checks the signature with the same key: the browser is known.
    assert_eq!(visit(b.addr, "198.51.100.7", Some(&cookie)).body, "safe");
    // Without a cookie: node A's click reaches Redis, then node B knows the visitor.
    assert_eq!(visit(a.addr, "203.0.113.2", None).body, "offer");
    // Every click is kept, the one node B served by the cookie too.
    wait_for("the three clicks in Redis", Duration::from_secs(20), || {
        redis.keys("fg:click:*").len() == 3
    });
    assert_eq!(visit(b.addr, "203.0.113.2", None).body, "safe");
    assert_eq!(visit(b.addr, "203.0.113.3", None).body, "offer");
    assert_eq!(a.metric(ERRORS) + b.metric(ERRORS), 0.0);
}

#[test]
fn with_redis_gone_flowgate_answers_within_the_deadline_counts_errors_and_reconnects() {
    let mut redis = RedisServer::start();
    let fg = node(&redis, CAPPED_RULES, "5ms");
    // A capped click and a stored click, so the state is in use before Redis goes.
    assert_eq!(visit(fg.addr, "203.0.113.1", None).body, "offer");
    redis.kill();
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let started = Instant::now();
        let r = visit(fg.addr, &format!("198.51.100.{}", i + 1), None);
        slowest = slowest.max(started.elapsed());
        assert_eq!(r.status, 200);
        assert!(r.body == "offer" || r.body == "safe", "{}", r.body);
    }
    // This process's own count stands in: 1 + 9 more offers, then the cap holds here.
    let offers = r#"flowgate_requests_total{campaign="spring",flow="capped",route="offer",status_class="2xx",visitor="human"}"#;
    assert_eq!(fg.metric(offers), 10.0);
    assert!(fg.metric(ERRORS) > 0.0);
    // A deadline of 5 ms; a loaded machine's request takes far longer than that to serve.
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");
    // Back (empty): the node connects again by itself; the clicks its own count took while
    // Redis was away are added there, and requests stop failing.
    redis.restart();
    let mut seen = None;
    poll_until(Duration::from_secs(20), || {
        let caps = redis.keys("fg:cap:*");
        seen = caps
            .first()
            .map(|k| redis::cmd("GET").arg(k).query::<u32>(&mut redis.conn()));
        // 9; or 10 when the first click missed its deadline too (it was then counted here).
        match &seen {
            Some(Ok(9 | 10)) => Ok(()),
            _ => Err(()),
        }
    });
    assert!(
        matches!(seen, Some(Ok(9 | 10))),
        "the node's count in Redis again: {seen:?}"
    );
    let mut n = 0;
    wait_for(
        "requests that no longer fail",
        Duration::from_secs(20),
        || {
            let before = fg.metric(ERRORS);
            n += 1;
            visit(fg.addr, &format!("192.0.2.{n}"), None);
            fg.metric(ERRORS) == before
        },
    );
}

#[test]
fn forget_erases_the_visitor_from_redis() {
    let redis = RedisServer::start();
    let fg = node(&redis, UNIQUE_RULES, "500ms");
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.1"] {
        visit(fg.addr, ip, None);
    }
    wait_for("3 clicks in Redis", Duration::from_secs(20), || {
        redis.keys("fg:click:*").len() == 3
    });
    // Read before forget, which erases the visitor's events too.
    let ev = fg.events(3);
    let id = click_id_from(&ev, "198.51.100.2");
    let said = fg.forget(&["--ip", "198.51.100.1"]);
    // Two clicks; seen in the campaign and in both flows (`fresh`, then `rest`).
    assert!(
        said.contains("removed 2 clicks and 3 visitor records"),
        "{said}"
    );
    assert_eq!(redis.keys("fg:click:*").len(), 1);
    assert_eq!(redis.keys("fg:seen:*").len(), 1);
    let said = fg.forget(&["--click-id", &id]);
    assert!(
        said.contains("removed 1 clicks and 2 visitor records"),
        "{said}"
    );
    assert!(redis.keys("fg:click:*").is_empty());
    assert!(redis.keys("fg:seen:*").is_empty());
}

#[test]
fn the_shared_store_finds_a_click_and_counts_a_conversion_once_for_every_node() {
    use flowgate::state::{Forget, RedisStore, Store, StoredClick};
    let redis = RedisServer::start();
    let day = Duration::from_secs(86_400);
    let mut a = RedisStore::open(&redis.url(), day).unwrap();
    let mut b = RedisStore::open(&redis.url(), day).unwrap();
    // Two nodes starting at once agree on the keys.
    let ip = "203.0.113.9".parse().unwrap();
    assert_eq!(a.keys().unwrap().ip_keys(ip), b.keys().unwrap().ip_keys(ip));
    let click = StoredClick {
        click_id: "0190b7e4-0000-7000-8000-000000000001".into(),
        ts_ms: flowgate_now_ms(),
        campaign: Some("spring".into()),
        flow: Some("fresh".into()),
        route: "offer".into(),
        source: Some("pushnet".into()),
        query: r#"{"utm_source":"push"}"#.into(),
        source_params: r#"{"external_id":"x1"}"#.into(),
        visitor: "ab".repeat(16),
        ip_key: "cd".repeat(16),
        unique: Some(true),
        scopes: vec![7, 9],
    };
    a.write(std::slice::from_ref(&click), &[]).unwrap();
    let found = b
        .click(&click.click_id)
        .unwrap()
        .expect("node B finds node A's click");
    assert_eq!(
        found,
        StoredClick {
            scopes: vec![],
            ..click.clone()
        }
    );
    assert_eq!(
        b.click("0190b7e4-0000-7000-8000-00000000ffff").unwrap(),
        None
    );
    assert!(a.converted(&click.click_id, "approved", 1).unwrap());
    assert!(
        !b.converted(&click.click_id, "approved", 2).unwrap(),
        "a repeat"
    );
    assert!(b.converted(&click.click_id, "rejected", 3).unwrap());
    let gone = b.forget(&Forget::ClickId(click.click_id.clone())).unwrap();
    assert_eq!((gone.clicks, gone.visitors), (1, 2));
    assert_eq!(a.click(&click.click_id).unwrap(), None);
    assert!(redis.keys("fg:conv:*").is_empty());
}

fn flowgate_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn a_bad_redis_url_or_deadline_is_named_with_its_line_and_a_redis_that_is_down_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup_with_state(
        dir.path(),
        "",
        UNIQUE_RULES,
        "state:\n  redis: \"http://127.0.0.1:6379\"\n  deadline: 5s\n",
    );
    let run = |sub: &str| flowgate_said(&config, &[sub]);
    let (code, text) = run("check");
    assert_eq!(code, Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let said = |field: &str| lines.iter().find(|l| l.contains(field)).copied();
    let redis = said("state.redis").unwrap_or_else(|| panic!("state.redis in {text}"));
    let deadline = said("state.deadline").unwrap_or_else(|| panic!("state.deadline in {text}"));
    assert!(redis.contains("flowgate.yaml:"), "{redis}");
    assert!(
        deadline.contains("flowgate.yaml:") && deadline.contains("1s"),
        "{deadline}"
    );
    // A well-formed address where no Redis listens: flowgate does not start (it could not
    // share the cookie and visitor keys), and says why.
    let port = free_port();
    let config = write_setup_with_state(
        dir.path(),
        "",
        UNIQUE_RULES,
        &format!("state: {{ redis: \"redis://127.0.0.1:{port}/0\" }}\n"),
    );
    let _ = config;
    let (code, text) = run("run");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("state") && text.contains("redis"), "{text}");
}
