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

/// The names a click carries, made once as a snapshot makes them (the request path clones
/// the snapshot's `Arc<str>`, it never allocates a name).
struct Names {
    campaign: Arc<str>,
    flow: Arc<str>,
    route: Arc<str>,
}

thread_local! {
    static NAMES: Names = Names {
        campaign: "spring".into(),
        flow: "fresh".into(),
        route: "offer".into(),
    };
}

fn click(ip: IpAddr, scopes: [u64; 2]) -> Click {
    let (campaign, flow, route) =
        NAMES.with(|n| (n.campaign.clone(), n.flow.clone(), n.route.clone()));
    Click {
        click_id: uuid::Uuid::nil(),
        ts_ms: 0,
        campaign: Some(campaign),
        flow: Some(flow),
        route,
        query: Some("utm_source=push&gclid=abc".into()),
        visitor: None,
        ua: None,
        ip,
        unique: None,
        scopes,
        source: None,
        source_params: None,
    }
}

/// What the request path does with state for one click: the visitor looked at, `unique`
/// answered, the click handed on. Never inlined, so callgrind can count it alone.
#[inline(never)]
fn one_request(state: &State, ip: IpAddr, headers: &HeaderMap, scopes: [u64; 2]) {
    let visit = state.visit(ip, Some(UA), headers);
    black_box(visit.unique(scopes[0], 86_400_000));
    black_box(state.clicked(&visit, click(ip, scopes)));
}

/// `STATE_BENCH_CALLS=N`: each request case exactly N times, without criterion, for
/// `valgrind --tool=callgrind --toggle-collect='*calls_*'` (instructions per call: the
/// function's inclusive count over N; the writer's thread is not counted).
fn calls(state: &State, n: u32, none: &HeaderMap, cookie: &HeaderMap, scopes: [u64; 2]) {
    #[inline(never)]
    fn calls_new_visitor(state: &State, n: u32, none: &HeaderMap, scopes: [u64; 2]) {
        for i in 0..n {
            let ip = IpAddr::from((0xc633_6400u32 | (i & 0xff_ffff)).to_be_bytes());
            one_request(state, ip, none, scopes);
        }
    }
    #[inline(never)]
    fn calls_with_cookie(state: &State, n: u32, headers: &HeaderMap, scopes: [u64; 2]) {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..n {
            one_request(state, ip, headers, scopes);
        }
    }
    #[inline(never)]
    fn calls_without_cookie(state: &State, n: u32, headers: &HeaderMap, scopes: [u64; 2]) {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..n {
            one_request(state, ip, headers, scopes);
        }
    }
    calls_new_visitor(state, n, none, scopes);
    calls_with_cookie(state, n, cookie, scopes);
    calls_without_cookie(state, n, none, scopes);
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
    let none = HeaderMap::new();
    let mut n: u32 = 0;
    let mut next_ip = || {
        n = n.wrapping_add(1);
        IpAddr::from((0xcb00_7100u32 | (n & 0xff_ffff)).to_be_bytes())
    };

    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let first = state.clicked(&state.visit(ip, Some(UA), &none), click(ip, scopes));
    let set = first.set_cookie.unwrap();
    let cookie = set.to_str().unwrap().split(';').next().unwrap().to_string();
    let mut with_cookie = HeaderMap::new();
    with_cookie.insert(
        http::header::COOKIE,
        HeaderValue::from_str(&cookie).unwrap(),
    );
    if let Some(n) = std::env::var("STATE_BENCH_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        calls(&state, n, &none, &with_cookie, scopes);
        state.close();
        return;
    }
    c.bench_function(
        "state: a new visitor without a cookie (unique, click, cookie made)",
        |b| b.iter(|| one_request(&state, next_ip(), &none, scopes)),
    );

    c.bench_function(
        "state: a returning browser with its cookie (unique, click)",
        |b| b.iter(|| one_request(&state, ip, &with_cookie, scopes)),
    );

    c.bench_function(
        "state: a returning visitor without a cookie (unique, click)",
        |b| b.iter(|| one_request(&state, ip, &none, scopes)),
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
