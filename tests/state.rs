//! Campaign state end to end, on the real binary: `unique` by the signed cookie and, without
//! one, by the visitor's address and user agent; a click cap that holds exactly across
//! visitors and restarts; `events forget` erasing the store beside a running flowgate.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn visit(addr: std::net::SocketAddr, ip: &str, ua: &str, cookie: Option<&str>) -> Reply {
    let mut h = vec![("User-Agent", ua), ("X-Forwarded-For", ip)];
    if let Some(c) = cookie {
        h.push(("Cookie", c));
    }
    get(addr, "/", &h)
}

/// `fg_uv=...` of a `Set-Cookie`, as the browser sends it back.
fn cookie_of(r: &Reply) -> String {
    let set = r.header("set-cookie").expect("a visitor cookie");
    assert!(set.contains("HttpOnly") && set.contains("Path=/"), "{set}");
    set.split(';').next().unwrap().to_string()
}

fn rows(db: &Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Stops flowgate the way systemd does and starts it again on the same files.
fn restart(fg: &mut Flowgate) -> Process {
    fg.signal("TERM");
    assert!(fg.process.wait().success());
    spawn(&fg.config())
}

#[test]
fn a_browser_that_keeps_its_cookie_is_unique_once_wherever_it_comes_from() {
    let fg = Flowgate::start("", UNIQUE_RULES);
    let first = visit(fg.addr, "203.0.113.1", CHROME, None);
    assert_eq!(first.body, "offer");
    let cookie = cookie_of(&first);
    // Back with its cookie, from another address: the cookie knows it.
    let back = visit(fg.addr, "198.51.100.9", CHROME, Some(&cookie));
    assert_eq!(back.body, "safe");
    // The cookie now also knows the flow `rest`; once more, it has nothing new to learn.
    let cookie = cookie_of(&back);
    let again = visit(fg.addr, "198.51.100.9", CHROME, Some(&cookie));
    assert_eq!(again.body, "safe");
    assert!(
        again.header("set-cookie").is_none(),
        "nothing new to tell it"
    );
    // Another visitor is new.
    assert_eq!(visit(fg.addr, "203.0.113.2", CHROME, None).body, "offer");
    // A forged cookie counts for nothing: the address and user agent answer instead.
    let forged = format!("{}x", &cookie[..cookie.len() - 1]);
    assert_eq!(
        visit(fg.addr, "203.0.113.1", CHROME, Some(&forged)).body,
        "safe"
    );
    assert_eq!(
        visit(fg.addr, "203.0.113.3", CHROME, Some(&forged)).body,
        "offer"
    );
    let ev = fg.events(6);
    let unique: Vec<_> = ev.iter().map(|e| e["unique"].as_bool()).collect();
    let (t, f) = (Some(true), Some(false));
    assert_eq!(unique, [t, f, f, t, f, t]);
}

#[test]
fn without_cookies_the_address_and_user_agent_answer_and_survive_a_restart() {
    let mut fg = Flowgate::start("", UNIQUE_RULES);
    let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
    assert_eq!(visit(fg.addr, "203.0.113.5", ua, None).body, "offer");
    assert_eq!(visit(fg.addr, "203.0.113.5", ua, None).body, "safe");
    assert_eq!(
        visit(fg.addr, "203.0.113.5", CHROME, None).body,
        "offer",
        "another browser"
    );
    let p = restart(&mut fg);
    assert_eq!(
        visit(p.addr(), "203.0.113.5", ua, None).body,
        "safe",
        "remembered"
    );
    assert_eq!(visit(p.addr(), "203.0.113.6", ua, None).body, "offer");
}

#[test]
fn a_cap_of_ten_clicks_serves_exactly_ten_of_thirty_visitors_and_holds_after_a_restart() {
    let mut fg = Flowgate::start("", CAPPED_RULES);
    let addr = fg.addr;
    let offers = thirty_at_once(move |_, ip| visit(addr, ip, CHROME, None).body == "offer");
    assert_eq!(offers, 10);
    let served = r#"flowgate_requests_total{campaign="spring",flow="capped",route="offer",status_class="2xx",visitor="human"}"#;
    assert_eq!(fg.metric(served), 10.0);
    let p = restart(&mut fg);
    let more = (0..5)
        .filter(|i| visit(p.addr(), &format!("198.51.100.{i}"), CHROME, None).body == "offer")
        .count();
    assert_eq!(more, 0, "the count was kept");
}

#[test]
fn forget_erases_the_visitor_from_the_store_beside_a_running_flowgate() {
    let fg = Flowgate::start("", UNIQUE_RULES);
    let db = fg.dir.path().join("state/state.db");
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.1"] {
        visit(fg.addr, ip, CHROME, None);
    }
    let clicks = |db: &Path| rows(db, "SELECT count(*) FROM clicks");
    wait_for("3 stored clicks", Duration::from_secs(20), || {
        clicks(&db) == 3
    });
    // Seen in the campaign, and in each flow that served them: 198.51.100.1 in both.
    assert_eq!(rows(&db, "SELECT count(*) FROM seen"), 5);
    let said = fg.forget(&["--ip", "198.51.100.1"]);
    assert!(
        said.contains("removed 2 clicks and 3 visitor records"),
        "{said}"
    );
    assert_eq!(
        (clicks(&db), rows(&db, "SELECT count(*) FROM seen")),
        (1, 2)
    );
    // The running flowgate goes on writing to the same store.
    visit(fg.addr, "198.51.100.3", CHROME, None);
    wait_for("the next click", Duration::from_secs(20), || {
        clicks(&db) == 2
    });
    let ev = fg.events(2);
    let id = click_id_from(&ev, "198.51.100.2");
    let said = fg.forget(&["--click-id", &id]);
    assert!(
        said.contains("removed 1 clicks and 2 visitor records"),
        "{said}"
    );
    assert_eq!(clicks(&db), 1);
}

#[test]
fn a_rule_test_says_what_the_store_would_answer_and_check_holds_it_to_that() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), "", UNIQUE_RULES);
    std::fs::create_dir_all(dir.path().join("rules/tests")).unwrap();
    let test = |state: &str, flow: &str| {
        format!(
            "- name: a {flow} visitor\n  request: {{ url: \"http://promo.example.com/\", ua: \"{CHROME}\" }}\n  {state}\n  expect: {{ flow: {flow} }}\n"
        )
    };
    let tests = dir.path().join("rules/tests/state.yaml");
    let check = || flowgate_cli(&config, &["check"]);
    let text = test("state: { unique: false }", "rest") + &test("state: { unique: true }", "fresh");
    std::fs::write(&tests, text + &test("", "fresh")).unwrap();
    let out = check();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 rule tests passed"));
    std::fs::write(&tests, test("state: { unique: false }", "fresh")).unwrap();
    let out = check();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("expected flow \"fresh\", got \"rest\""),
        "{err}"
    );
    // A rule test reads nothing from the store and leaves nothing in it.
    assert!(!dir.path().join("state/state.db").exists());
}
