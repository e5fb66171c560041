//! What campaign state adds to a request, on the request path only (the store is written by
//! the state writer's thread): the visitor's cookie checked, `unique` answered, a cap's click
//! taken, and the click handed on (index, cookie, queue).

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use flowgate::config::StateConfig;
use flowgate::metrics::Metrics;
use flowgate::state::{scope, Click, Per, State, VISITOR_DEADLINE};
use http::{HeaderMap, HeaderValue};

const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                  (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

fn click(ip: IpAddr, scopes: [u64; 2]) -> Click {
    Click {
        click_id: uuid::Uuid::nil(),
        ts_ms: 0,
        campaign: Some("spring".into()),
        flow: Some("fresh".into()),
        route: "offer".into(),
        query: Some("utm_source=push&gclid=abc".into()),
        visitor: None,
        ua: None,
        ip,
        unique: None,
        scopes,
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StateConfig {
        path: dir.path().join("state.db"),
        ..StateConfig::default()
    };
    let metrics = Arc::new(Metrics::new().unwrap());
    let state = State::open(&cfg, &["utm_*".to_string()], metrics.clone()).unwrap();
    let scopes = [scope("spring", None), scope("spring", Some("fresh"))];
    let window = 86_400_000;
    let none = HeaderMap::new();
    let mut n: u32 = 0;
    let mut next_ip = || {
        n = n.wrapping_add(1);
        IpAddr::from((0xcb00_7100u32 | (n & 0xff_ffff)).to_be_bytes())
    };

    c.bench_function(
        "state: a new visitor without a cookie (unique, click, cookie made)",
        |b| {
            b.iter(|| {
                let ip = next_ip();
                let visit = state.visit(ip, Some(UA), &none);
                black_box(visit.unique(scopes[0], window));
                black_box(state.clicked(&visit, click(ip, scopes)));
            })
        },
    );

    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let first = state.clicked(&state.visit(ip, Some(UA), &none), click(ip, scopes));
    let set = first.set_cookie.unwrap();
    let cookie = set.to_str().unwrap().split(';').next().unwrap().to_string();
    let mut with_cookie = HeaderMap::new();
    with_cookie.insert(
        http::header::COOKIE,
        HeaderValue::from_str(&cookie).unwrap(),
    );
    c.bench_function(
        "state: a returning browser with its cookie (unique, click)",
        |b| {
            b.iter(|| {
                let visit = state.visit(ip, Some(UA), &with_cookie);
                black_box(visit.unique(scopes[0], window));
                black_box(state.clicked(&visit, click(ip, scopes)));
            })
        },
    );

    c.bench_function(
        "state: a returning visitor without a cookie (unique, click)",
        |b| {
            b.iter(|| {
                let visit = state.visit(ip, Some(UA), &none);
                black_box(visit.unique(scopes[0], window));
                black_box(state.clicked(&visit, click(ip, scopes)));
            })
        },
    );

    let keys =
        flowgate::state::Keys::open(dir.path(), std::time::Duration::from_secs(86_400)).unwrap();
    c.bench_function(
        "state parts: pseudonym (HMAC of address and user agent)",
        |b| b.iter(|| black_box(keys.pseudonym(black_box(ip), UA))),
    );
    let mut vc = flowgate::state::VisitorCookie::default();
    vc.mark(1, 1000);
    vc.mark(2, 1000);
    let value = vc.encode(keys.cookie());
    c.bench_function("state parts: cookie made (2 scopes)", |b| {
        b.iter(|| black_box(black_box(&vc).encode(keys.cookie())))
    });
    c.bench_function("state parts: cookie checked (2 scopes)", |b| {
        b.iter(|| {
            black_box(flowgate::state::VisitorCookie::decode(
                black_box(&value),
                keys.cookie(),
            ))
        })
    });

    let counter = state
        .caps()
        .counter("spring/capped/clicks/day+180", Per::Day, 180);
    c.bench_function("state: a cap's click taken", |b| {
        b.iter(|| black_box(counter.take(u32::MAX, black_box(1_800_000_000_000))))
    });

    // A lander's click-through: its click found among those served in the last seconds.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lander = Click {
        click_id: uuid::Uuid::now_v7(),
        ..click(ip, scopes)
    };
    let id = lander.click_id;
    state.clicked(&state.visit(ip, Some(UA), &none), lander);
    let id_text = id.hyphenated().to_string();
    c.bench_function("state: a recent click found by id (in memory)", |b| {
        b.iter(|| {
            let found = rt.block_on(state.click(black_box(&id_text), VISITOR_DEADLINE));
            black_box(found.expect("in memory"))
        })
    });
    let set = state.click_cookie(id).unwrap();
    let mut with_click = HeaderMap::new();
    let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
    with_click.insert(http::header::COOKIE, HeaderValue::from_str(&pair).unwrap());
    c.bench_function("state parts: click cookie made", |b| {
        b.iter(|| black_box(state.click_cookie(black_box(id))))
    });
    c.bench_function("state parts: click cookie checked", |b| {
        b.iter(|| black_box(state.cookie_click(black_box(&with_click))))
    });
    state.close();
    let count = |o: &str| metrics.state_clicks.with_label_values(&[o]).get();
    eprintln!(
        "state writer: {} clicks written, {} dropped (the bench outruns the store on purpose)",
        count("written"),
        count("dropped")
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
