//! What checking a visitor's claims costs: a crawler's claim against its published ranges
//! (paid by every request the classifier takes for a bot), and the consistency signals (paid
//! only when a rule asks for them), on the header sets real clients send.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use flowgate::config::Config;
use flowgate::rules::RequestFacts;
use flowgate::snapshot::Snapshot;
use http::{HeaderMap, Method};

const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

const RULES: &str = "
routes: { odd: { respond: { body: odd } }, ok: { respond: { body: ok } } }
campaigns:
  - id: c
    flows:
      - { name: verified, if: { crawler: verified }, to: ok }
      - { name: claimed, if: { crawler: claimed }, to: odd }
      - { name: signals, if: { signal: [hints_mismatch, headers_missing] }, to: odd }
      - { name: rest, to: ok }
";

fn snapshot(dir: &Path) -> Snapshot {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/crawlers");
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/bench.yaml"), RULES).unwrap();
    let config = format!(
        "rules: rules\nintel:\n  crawlers:\n    googlebot: {}\n    bingbot: {}\nevents: {{ sink: none }}\n",
        data.join("googlebot.json").display(),
        data.join("bingbot.txt").display(),
    );
    std::fs::write(dir.join("flowgate.yaml"), config).unwrap();
    Snapshot::build(&Config::load(&dir.join("flowgate.yaml")).unwrap(), 1).unwrap()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().unwrap());
    }
    h
}

fn facts(headers: &HeaderMap) -> RequestFacts<'_> {
    RequestFacts {
        method: &Method::GET,
        host: "promo.example.com",
        path: "/",
        query: None,
        headers,
        at: None,
        rate_limited: Default::default(),
        state: Default::default(),
        ja4: None,
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    let inside: IpAddr = "66.249.64.5".parse().unwrap();
    let outside: IpAddr = "203.0.113.9".parse().unwrap();
    let mut g = c.benchmark_group("claims");
    g.bench_function("crawler_judge (Googlebot, in its ranges)", |b| {
        b.iter(|| black_box(snap.intel.crawlers.judge(black_box(GOOGLEBOT), inside)))
    });
    g.bench_function("crawler_judge (Googlebot, elsewhere)", |b| {
        b.iter(|| black_box(snap.intel.crawlers.judge(black_box(GOOGLEBOT), outside)))
    });
    g.bench_function("crawler_judge (curl, no claim)", |b| {
        b.iter(|| black_box(snap.intel.crawlers.judge(black_box("curl/8.5.0"), outside)))
    });
    // What a request pays for a known bot's claim. Before the claim was cached with the user
    // agent's class, the visitor ran the literal search every time (`old`); now a cached user
    // agent pays only the range check (`cached`).
    let hints = flowgate::identity::ClientHints::default();
    let claim = snap.intel.ua_facts(Some(GOOGLEBOT)).claim;
    g.bench_function(
        "crawler claim cached, range check only (Googlebot, elsewhere)",
        |b| b.iter(|| black_box(snap.intel.crawlers.verdict(black_box(claim), outside))),
    );
    g.bench_function(
        "ua + crawler, old: cached class then judge (Googlebot)",
        |b| {
            b.iter(|| {
                let class = snap.intel.classify_ua(black_box(Some(GOOGLEBOT)));
                black_box((class, snap.intel.crawlers.judge(GOOGLEBOT, outside)))
            })
        },
    );
    g.bench_function("ua + crawler, cached together (Googlebot)", |b| {
        b.iter(|| {
            let facts = snap.intel.ua_facts(black_box(Some(GOOGLEBOT)));
            black_box((
                facts.class,
                snap.intel.crawlers.verdict(facts.claim, outside),
            ))
        })
    });
    g.bench_function("visitor (Googlebot, cached)", |b| {
        b.iter(|| {
            black_box(
                snap.intel
                    .visitor(outside, black_box(Some(GOOGLEBOT)), hints),
            )
        })
    });
    // Whole evaluations: visitor built once, the rules' four flows each time.
    let cases = [
        (
            "rules (verified Googlebot)",
            GOOGLEBOT,
            inside,
            headers(&[("user-agent", GOOGLEBOT)]),
        ),
        (
            "rules (claimed Googlebot)",
            GOOGLEBOT,
            outside,
            headers(&[("user-agent", GOOGLEBOT)]),
        ),
        (
            "rules (Chromium's headers, consistent)",
            CHROME,
            outside,
            headers(&[
                ("user-agent", CHROME),
                ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
                ("accept-language", "en-US,en;q=0.9"),
                (
                    "sec-ch-ua",
                    r#""Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99""#,
                ),
                ("sec-ch-ua-platform", "\"Windows\""),
            ]),
        ),
        (
            "rules (Chrome's user agent from curl)",
            CHROME,
            outside,
            headers(&[("user-agent", CHROME), ("accept", "*/*")]),
        ),
    ];
    for (name, ua, ip, h) in &cases {
        let f = facts(h);
        let v = snap.intel.visitor(
            *ip,
            Some(ua),
            flowgate::identity::ClientHints::from_headers(h),
        );
        g.bench_function(*name, |b| b.iter(|| black_box(snap.rules.evaluate(&v, &f))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
