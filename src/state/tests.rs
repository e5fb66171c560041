//! The state as the request path uses it, on a real database in a temporary folder.

use super::*;

fn config(dir: &std::path::Path) -> StateConfig {
    StateConfig {
        path: dir.join("state.db"),
        ..StateConfig::default()
    }
}

fn open(dir: &std::path::Path) -> Arc<State> {
    let metrics = Arc::new(Metrics::new().unwrap());
    State::open(&config(dir), &["utm_*".to_string()], metrics).unwrap()
}

fn click(scopes: [u64; 2]) -> Click {
    Click {
        click_id: uuid::Uuid::now_v7(),
        ts_ms: crate::time::now_ms(),
        campaign: Some("c".into()),
        flow: Some("f".into()),
        route: "offer".into(),
        query: Some("utm_source=push&secret=1".into()),
        visitor: None,
        ua: None,
        ip: "203.0.113.7".parse().unwrap(),
        unique: None,
        scopes,
        source: None,
        source_params: None,
    }
}

fn cookie_headers(set_cookie: &HeaderValue) -> HeaderMap {
    let value = set_cookie
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut h = HeaderMap::new();
    h.insert(http::header::COOKIE, value.parse().unwrap());
    h
}

#[test]
fn a_visitor_is_unique_once_per_campaign_by_cookie_or_by_pseudonym() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    let (c, f) = (scope("c", None), scope("c", Some("f")));
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let none = HeaderMap::new();
    let first = state.visit(ip, Some("ua"), &none);
    assert!(first.unique(c, 86_400_000));
    let done = state.clicked(&first, click([c, f]));
    assert_eq!(done.unique, Some(true));
    let set = done.set_cookie.expect("a cookie for a new visitor");
    assert!(set.to_str().unwrap().contains("HttpOnly"));
    // The cookie answers, wherever the browser comes from next.
    let with_cookie = cookie_headers(&set);
    let back = state.visit("198.51.100.1".parse().unwrap(), Some("other"), &with_cookie);
    assert!(back.has_cookie());
    assert!(!back.unique(c, 86_400_000) && !back.unique(f, 86_400_000));
    assert!(back.unique(scope("other", None), 86_400_000));
    let again = state.clicked(&back, click([c, f]));
    assert_eq!(again.unique, Some(false));
    assert!(
        again.set_cookie.is_none(),
        "nothing new to tell the browser"
    );
    // Without a cookie, the same address and user agent are known by pseudonym.
    let no_cookie = state.visit(ip, Some("ua"), &none);
    assert!(!no_cookie.unique(c, 86_400_000));
    assert!(state
        .visit(ip, Some("another ua"), &none)
        .unique(c, 86_400_000));
    // A window shorter than the time since: unique again.
    assert!(no_cookie.unique(c, 0));
    // A cookie flowgate did not sign is no cookie.
    let mut forged = HeaderMap::new();
    forged.insert(http::header::COOKIE, "fg_uv=AQAA".parse().unwrap());
    assert!(!state.visit(ip, Some("ua"), &forged).has_cookie());
    state.close();
}

#[test]
fn clicks_seen_times_and_cap_counts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    let c = scope("c", None);
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let visit = state.visit(ip, Some("ua"), &HeaderMap::new());
    state.clicked(&visit, click([c, 0]));
    let counter = state.caps().counter("c/f/clicks/total+0", Per::Total, 0);
    for _ in 0..4 {
        counter.take(10, visit.now_ms).unwrap();
    }
    state.close();
    let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let (n, query): (i64, String) = db
        .query_row("SELECT count(*), max(query) FROM clicks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((n, query.as_str()), (1, r#"{"utm_source":"push"}"#));
    let state = open(dir.path());
    let visit = state.visit(ip, Some("ua"), &HeaderMap::new());
    assert!(
        !visit.unique(c, 86_400_000),
        "the index is loaded from the store"
    );
    let counter = state.caps().counter("c/f/clicks/total+0", Per::Total, 0);
    assert_eq!(counter.count(visit.now_ms), 4);
    state.close();
}

#[test]
fn a_full_queue_drops_and_counts_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new().unwrap());
    let mut cfg = config(dir.path());
    cfg.queue = crate::yaml::At::new(1);
    let state = State::open(&cfg, &[], metrics.clone()).unwrap();
    let visit = state.visit("203.0.113.7".parse().unwrap(), None, &HeaderMap::new());
    let started = std::time::Instant::now();
    for _ in 0..2000 {
        state.clicked(&visit, click([scope("c", None), 0]));
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    state.close();
    let count = |o: &str| metrics.state_clicks.with_label_values(&[o]).get();
    assert!(count("dropped") > 0);
    assert_eq!(count("dropped") + count("written"), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_click_is_found_at_once_from_memory_and_after_a_restart_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path());
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let visit = state.visit(ip, Some("ua"), &HeaderMap::new());
    let c = click([scope("c", None), 0]);
    let id = c.click_id.hyphenated().to_string();
    state.clicked(&visit, c);
    // Before the writer's batch: memory answers, with only the kept parameters.
    let found = state.click(&id, VISITOR_DEADLINE).await.unwrap();
    assert_eq!(
        (
            found.campaign.as_deref(),
            found.flow.as_deref(),
            &*found.route
        ),
        (Some("c"), Some("f"), "offer")
    );
    assert_eq!(found.query, r#"{"utm_source":"push"}"#);
    assert_eq!(found.source_params, "{}");
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(state.click(&unknown, VISITOR_DEADLINE).await, None);
    assert_eq!(state.click("not a click id", VISITOR_DEADLINE).await, None);
    assert_eq!(
        state.converted(&id, "approved", POSTBACK_DEADLINE).await,
        Some(true)
    );
    assert_eq!(
        state.converted(&id, "approved", POSTBACK_DEADLINE).await,
        Some(false)
    );
    state.close();
    // Another process (or this one restarted) finds it in the store, the same click.
    let again = open(dir.path());
    let stored = again.click(&id, POSTBACK_DEADLINE).await.unwrap();
    assert_eq!(stored, found);
    assert_eq!(
        again.converted(&id, "approved", POSTBACK_DEADLINE).await,
        Some(false),
        "a repeat after a restart still counts once"
    );
    again.close();
}
