//! Conversions forwarded to traffic sources, against a real receiver on loopback: the plain
//! GET postback, a Meta-Conversions-API-shaped JSON POST and a Google-Ads-offline-conversion
//! shaped one each arrive in their shape; a source that is down gets the conversion once it
//! is up, once, even across a restart; statuses filter; hashed fields never go out (or to
//! disk) in clear.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use flowgate::events::{ConversionEvent, PostbackEvent, Record};
use flowgate::metrics::Metrics;
use flowgate::postbacks::{self, Forwarded, Forwarder, Settings};
use flowgate::rules::{self, Rules};
use flowgate::state::StoredClick;

const WAIT: Duration = Duration::from_secs(10);

fn rules_for(dir: &Path, yaml: &str) -> Arc<Rules> {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("main.yaml"), yaml).unwrap();
    let intel = flowgate::identity::Intel::default();
    Arc::new(rules::load(&rules, &intel).unwrap_or_else(|p| panic!("{p}")))
}

/// A forwarder whose outcome events land in `events`.
fn forwarder(
    dir: &Path,
    rules: &Arc<Rules>,
    metrics: &Arc<Metrics>,
    events: &Arc<Mutex<Vec<PostbackEvent>>>,
) -> Forwarder {
    let r = rules.clone();
    let render: postbacks::Render = Arc::new(move |name, facts| {
        let s = r.sources.iter().find(|s| &*s.name == name)?;
        s.postback.as_ref().map(|p| p.render(facts))
    });
    let e = events.clone();
    let report: postbacks::Report = Arc::new(move |rec| {
        if let Record::Postback(p) = rec {
            e.lock().unwrap().push(p);
        }
    });
    let settings = Settings {
        timeout: Duration::from_secs(2),
        ..Settings::new(dir.join("postbacks"))
    };
    Forwarder::start(settings, render, report, metrics.clone()).unwrap()
}

fn click(id: &str, source: &str, params: serde_json::Value) -> StoredClick {
    StoredClick {
        click_id: id.into(),
        ts_ms: 0,
        campaign: Some("spring".into()),
        flow: Some("fresh".into()),
        route: "offer".into(),
        source: Some(source.into()),
        query: "{}".into(),
        source_params: params.to_string(),
        visitor: String::new(),
        ip_key: String::new(),
        unique: None,
        scopes: Vec::new(),
    }
}

fn conversion(click_id: &str, status: &str) -> ConversionEvent {
    ConversionEvent {
        ts: "2026-05-01T12:00:00.000Z".into(),
        click_id: click_id.into(),
        payout: Some(12.5),
        currency: Some("EUR".into()),
        conversion_status: Some(status.into()),
        source: Some("from the click".into()),
        ..ConversionEvent::default()
    }
}

fn outcomes(events: &Mutex<Vec<PostbackEvent>>, outcome: &str) -> usize {
    let e = events.lock().unwrap();
    e.iter().filter(|p| p.outcome == outcome).count()
}

fn sha256(s: &str) -> String {
    flowgate::rules::sources::hash_value(s).unwrap()
}

#[test]
fn a_plain_get_postback_carries_every_value_encoded_and_the_idempotency_key() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let rules = rules_for(
        dir.path(),
        &format!(
            r#"sources:
  pushnet:
    match: {{ param: {{ src: pushnet }} }}
    params: {{ external_id: clickid, zone: zoneid }}
    postback:
      url: "{}?clickid={{external_id}}&payout={{payout}}&status={{status}}&z={{zone}}&c={{campaign}}"
      statuses: [approved]
"#,
            rx.url("/conv")
        ),
    );
    let (metrics, events) = (Arc::new(Metrics::new().unwrap()), Arc::default());
    let fw = forwarder(dir.path(), &rules, &metrics, &events);
    let c = click(
        "0190aaaa-0000-7000-8000-000000000001",
        "pushnet",
        serde_json::json!({"external_id": "ext 1&x", "zone": "77"}),
    );

    // Not a status the source takes: counted, never sent.
    let pending = conversion(&c.click_id, "pending");
    assert_eq!(fw.forward(&rules, &c, &pending, &[]), Forwarded::Filtered);
    let approved = conversion(&c.click_id, "approved");
    assert_eq!(fw.forward(&rules, &c, &approved, &[]), Forwarded::Queued);
    wait_for("delivered", WAIT, || outcomes(&events, "delivered") == 1);

    let got = rx.received();
    assert_eq!(
        got.len(),
        1,
        "only the approved conversion went out: {got:?}"
    );
    assert_eq!(got[0].method, "GET");
    assert_eq!(
        got[0].target,
        "/conv?clickid=ext%201%26x&payout=12.5&status=approved&z=77&c=spring"
    );
    let key = postbacks::conversion_id(&c.click_id, Some("approved"));
    assert_eq!(got[0].headers.get("idempotency-key"), Some(&key));
    assert_eq!(outcomes(&events, "filtered"), 1);
    let count = |o: &str| metrics.postbacks.with_label_values(&["pushnet", o]).get();
    assert_eq!((count("delivered"), count("filtered")), (1, 1));
    fw.close();
}

#[test]
fn a_meta_capi_and_a_google_ads_shaped_post_arrive_in_their_shape_with_hashed_user_data() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    std::env::set_var("FLOWGATE_TEST_GADS_TOKEN", "test-only-token");
    let rules = rules_for(
        dir.path(),
        &format!(
            r#"sources:
  meta:
    match: {{ param: {{ fbclid: present }} }}
    params: {{ external_id: fbclid, email: em, phone: ph }}
    hash: [email, phone]
    postback:
      method: POST
      url: "{meta}"
      body:
        data:
          - event_name: Purchase
            event_time: "{{ts_unix}}"
            event_id: "{{conversion_id}}"
            action_source: website
            user_data: {{ em: ["{{email}}"], ph: ["{{phone}}"], fbc: "fb.1.{{ts_unix}}.{{external_id}}" }}
            custom_data: {{ value: "{{payout}}", currency: "{{currency}}" }}
  gads:
    match: {{ param: {{ gclid: present }} }}
    params: {{ external_id: gclid }}
    postback:
      method: POST
      url: "{gads}"
      headers:
        authorization: {{ env: FLOWGATE_TEST_GADS_TOKEN }}
        developer-token: "dev-{{campaign}}"
      body:
        conversions:
          - gclid: "{{external_id}}"
            conversion_action: "customers/1234567890/conversionActions/42"
            conversion_date_time: "{{datetime}}"
            conversion_value: "{{payout}}"
            currency_code: "{{currency}}"
        partial_failure: true
"#,
            meta = rx.url("/v19.0/1234/events"),
            gads = rx.url("/v17/customers/1234567890:uploadClickConversions"),
        ),
    );
    let (metrics, events) = (Arc::new(Metrics::new().unwrap()), Arc::default());
    let fw = forwarder(dir.path(), &rules, &metrics, &events);

    // The email came with the click URL (hashed when read); the phone with the conversion.
    let m = click(
        "0190aaaa-0000-7000-8000-000000000002",
        "meta",
        serde_json::json!({"external_id": "fbclick", "email": sha256("ann@example.com")}),
    );
    let extras = postbacks::extras(&rules, Some("click_id=x&phone=%2B1%20555%200100&junk=1"));
    assert_eq!(extras, [("phone".to_string(), sha256("+1 555 0100"))]);
    let conv = conversion(&m.click_id, "approved");
    assert_eq!(fw.forward(&rules, &m, &conv, &extras), Forwarded::Queued);
    let g = click(
        "0190aaaa-0000-7000-8000-000000000003",
        "gads",
        serde_json::json!({"external_id": "Cj0KCQ"}),
    );
    let conv = conversion(&g.click_id, "approved");
    assert_eq!(fw.forward(&rules, &g, &conv, &[]), Forwarded::Queued);
    wait_for("both delivered", WAIT, || {
        outcomes(&events, "delivered") == 2
    });

    let got = rx.received();
    let meta = got.iter().find(|r| r.target.contains("/events")).unwrap();
    assert_eq!(meta.method, "POST");
    assert_eq!(
        meta.headers.get("content-type").unwrap(),
        "application/json"
    );
    let body = meta.json();
    let event = &body["data"][0];
    assert_eq!(event["event_name"], "Purchase");
    assert_eq!(
        event["event_time"], 1_777_636_800,
        "a number, as Meta takes it"
    );
    assert_eq!(event["custom_data"]["value"], 12.5);
    assert_eq!(event["custom_data"]["currency"], "EUR");
    assert_eq!(event["user_data"]["em"][0], sha256("ann@example.com"));
    assert_eq!(event["user_data"]["ph"][0], sha256("+1 555 0100"));
    assert_eq!(event["user_data"]["fbc"], "fb.1.1777636800.fbclick");
    let text = String::from_utf8_lossy(&meta.body);
    assert!(
        !text.contains("example.com") && !text.contains("555"),
        "{text}"
    );

    let gads = got.iter().find(|r| r.target.contains("upload")).unwrap();
    assert_eq!(
        gads.headers.get("authorization").unwrap(),
        "test-only-token"
    );
    assert_eq!(gads.headers.get("developer-token").unwrap(), "dev-spring");
    let body = gads.json();
    assert_eq!(body["partial_failure"], true);
    let conv = &body["conversions"][0];
    assert_eq!(conv["gclid"], "Cj0KCQ");
    assert_eq!(conv["conversion_date_time"], "2026-05-01 12:00:00+00:00");
    assert_eq!(conv["conversion_value"], 12.5);
    assert_eq!(conv["currency_code"], "EUR");
    fw.close();
}

#[test]
fn a_source_that_is_down_gets_the_conversion_once_it_is_up_and_a_restart_never_resends_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rules = rules_for(
        dir.path(),
        &format!(
            r#"sources:
  meta:
    params: {{ external_id: fbclid, email: em }}
    hash: [email]
    postback:
      method: POST
      url: "http://127.0.0.1:{port}/events"
      body: {{ data: [{{ event_id: "{{conversion_id}}", em: "{{email}}" }}] }}
"#
        ),
    );
    let (metrics, events) = (Arc::new(Metrics::new().unwrap()), Arc::default());
    let fw = forwarder(dir.path(), &rules, &metrics, &events);
    let hashed = sha256("bob@example.com");
    let c = click(
        "0190aaaa-0000-7000-8000-000000000004",
        "meta",
        serde_json::json!({"email": hashed}),
    );
    assert_eq!(
        fw.forward(&rules, &c, &conversion(&c.click_id, "approved"), &[]),
        Forwarded::Queued
    );
    wait_for("a retrying outcome", WAIT, || {
        outcomes(&events, "retrying") == 1
    });
    // Waiting on disk, hashed: the spool holds no clear value.
    let spooled = read_tree(&dir.path().join("postbacks"));
    assert!(spooled.contains(&hashed), "{spooled}");
    assert!(!spooled.contains("bob@"), "{spooled}");

    // A restart while the source is down: the job waits on disk for the next run.
    fw.close();
    let fw = forwarder(dir.path(), &rules, &metrics, &events);
    let rx = Receiver::start_on(port);
    wait_for("delivered after the source came up", WAIT, || {
        outcomes(&events, "delivered") == 1
    });
    let key = postbacks::conversion_id(&c.click_id, Some("approved"));
    assert_eq!(rx.received()[0].headers.get("idempotency-key"), Some(&key));
    assert_eq!(
        outcomes(&events, "retrying"),
        1,
        "told once, not per attempt"
    );

    // Another restart: what was delivered is not sent again. A second conversion, sent
    // after the restart, shows the forwarder had its chance to resend.
    fw.close();
    let fw = forwarder(dir.path(), &rules, &metrics, &events);
    let c2 = click(
        "0190aaaa-0000-7000-8000-000000000005",
        "meta",
        serde_json::json!({}),
    );
    fw.forward(&rules, &c2, &conversion(&c2.click_id, "approved"), &[]);
    wait_for("the second delivered", WAIT, || {
        outcomes(&events, "delivered") == 2
    });
    let keys: Vec<String> = (rx.received().iter())
        .filter_map(|r| r.headers.get("idempotency-key").cloned())
        .collect();
    assert_eq!(keys.iter().filter(|k| **k == key).count(), 1, "{keys:?}");
    assert_eq!(keys.len(), 2, "{keys:?}");
    fw.close();
}

#[test]
fn a_source_that_refuses_a_conversion_is_not_asked_again() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    rx.status.store(400, std::sync::atomic::Ordering::SeqCst);
    let rules = rules_for(
        dir.path(),
        &format!(
            "sources:\n  s:\n    postback: {{ url: \"{}?id={{click_id}}\" }}\n",
            rx.url("/c")
        ),
    );
    let (metrics, events) = (Arc::new(Metrics::new().unwrap()), Arc::default());
    let fw = forwarder(dir.path(), &rules, &metrics, &events);
    let c = click(
        "0190aaaa-0000-7000-8000-000000000006",
        "s",
        serde_json::json!({}),
    );
    fw.forward(&rules, &c, &conversion(&c.click_id, "approved"), &[]);
    wait_for("rejected", WAIT, || outcomes(&events, "rejected") == 1);
    rx.status.store(200, std::sync::atomic::Ordering::SeqCst);
    let c2 = click(
        "0190aaaa-0000-7000-8000-000000000007",
        "s",
        serde_json::json!({}),
    );
    fw.forward(&rules, &c2, &conversion(&c2.click_id, "approved"), &[]);
    wait_for("the next delivered", WAIT, || {
        outcomes(&events, "delivered") == 1
    });
    assert_eq!(rx.received().len(), 2, "the refused one was asked once");
    fw.close();
}

/// Every file under `dir`, concatenated.
fn read_tree(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.push_str(&read_tree(&p));
        } else if let Ok(s) = std::fs::read_to_string(&p) {
            out.push_str(&s);
        }
    }
    out
}
