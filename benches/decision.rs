//! The decision path — identity (client IP, MaxMind, IP lists, user agent) plus rules — for a
//! realistic ruleset: 5 campaigns × 10 flows, a 51k-network datacenter list, the MaxMind test
//! databases and the built-in bot patterns.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use flowgate::config::Config;
use flowgate::identity::{client_ip, CidrSet, ClientIpHeader};
use flowgate::rules::RequestFacts;
use flowgate::snapshot::Snapshot;
use http::{HeaderMap, Method};

fn ruleset() -> String {
    let mut r = String::from(
        "upstreams:\n  landing: { peers: [\"127.0.0.1:8081\"] }\nroutes:\n  \
         offer: { proxy: { upstream: landing, path: /offer } }\n  \
         safe: { proxy: { upstream: landing, path: /safe } }\n  \
         shop: { redirect: { to: \"https://shop.example.com/?cid={click_id}\" } }\ncampaigns:\n",
    );
    for c in 0..5 {
        r.push_str(&format!(
            "  - id: c{c}\n    match: {{ host: \"{}\", path_prefix: /p{c}/ }}\n    flows:\n",
            if c == 4 {
                "*.example.com"
            } else {
                "promo.example.com"
            }
        ));
        let flows = [
            "{ any: [ { bot: true }, { ip_list: [datacenter, tor] } ] }",
            "{ ua: \"(?i)(headless|phantom|selenium)\" }",
            "{ referer: \"(?i)(facebook|instagram)\\\\.com\" }",
            "{ all: [ { country: [US, CA] }, { device: [mobile] } ] }",
            "{ asn: [15169, 16509, 14618, 8075] }",
            "{ all: [ { country: [DE, AT, CH] }, { language: [de] } ] }",
            "{ param: { utm_source: \"^(fb|ig)$\", sub1: present } }",
            "{ not: { method: [GET, HEAD] } }",
            "{ path: \"~ ^/p[0-9]/promo/[0-9]+$\" }",
        ];
        for (i, cond) in flows.iter().enumerate() {
            let to = if i == 6 {
                "{ offer: 80, shop: 20 }"
            } else {
                "safe"
            };
            r.push_str(&format!("      - {{ name: f{i}, if: {cond}, to: {to} }}\n"));
        }
        r.push_str("      - { name: rest, to: offer }\n");
    }
    r
}

fn snapshot(dir: &Path) -> Snapshot {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/bench.yaml"), ruleset()).unwrap();
    let dc = std::fs::read_to_string(data.join("ip-lists/datacenter-ipv4.txt")).unwrap()
        + &std::fs::read_to_string(data.join("ip-lists/datacenter-ipv6.txt")).unwrap();
    std::fs::write(dir.join("datacenter.txt"), dc).unwrap();
    let config = format!(
        "rules: rules\nintel:\n  country: {m}/GeoIP2-Country-Test.mmdb\n  asn: {m}/GeoLite2-ASN-Test.mmdb\n  \
         anonymous: {m}/GeoIP2-Anonymous-IP-Test.mmdb\n  \
         lists: {{ datacenter: datacenter.txt, tor: {d}/tor-exit-nodes.txt }}\nevents: {{ sink: none }}\n",
        m = data.join("maxmind").display(),
        d = data.join("ip-lists").display(),
    );
    std::fs::write(dir.join("flowgate.yaml"), config).unwrap();
    let config = Config::load(&dir.join("flowgate.yaml")).unwrap();
    let snap = Snapshot::build(&config, 1).unwrap();
    let entries: usize = snap.intel.lists.iter().map(|l| l.set.entries()).sum();
    assert!(entries > 50_000, "{entries} list entries");
    snap
}

struct Req {
    peer: IpAddr,
    path: &'static str,
    query: Option<&'static str>,
    headers: HeaderMap,
}

fn requests() -> Vec<Req> {
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    let cases: [(&str, &str, &str, Option<&'static str>, &'static str); 6] = [
        (
            "81.2.69.142",
            chrome,
            "en-GB,en;q=0.9",
            Some("utm_source=fb&sub1=42"),
            "/p1/lp",
        ),
        (
            "216.160.83.56",
            iphone,
            "en-US",
            Some("gclid=abc"),
            "/p3/lp",
        ),
        ("1.13.2.3", chrome, "de-DE", None, "/p0/"),
        ("89.160.20.112", "curl/8.5.0", "", None, "/p2/x"),
        (
            "2001:218::1",
            iphone,
            "ja",
            Some("utm_source=ig"),
            "/p4/promo/7",
        ),
        ("1.128.0.1", chrome, "de-AT,de;q=0.9", None, "/p2/"),
    ];
    cases
        .iter()
        .map(|(ip, ua, lang, query, path)| {
            let mut headers = HeaderMap::new();
            headers.insert("host", "promo.example.com".parse().unwrap());
            headers.insert("user-agent", ua.parse().unwrap());
            headers.insert("accept-language", lang.parse().unwrap());
            headers.insert("x-forwarded-for", ip.parse().unwrap());
            Req {
                peer: "127.0.0.1".parse().unwrap(),
                path,
                query: *query,
                headers,
            }
        })
        .collect()
}

impl Req {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            method: &Method::GET,
            host: "promo.example.com",
            path: self.path,
            query: self.query,
            headers: &self.headers,
            at: None,
            rate_limited: Default::default(),
            state: Default::default(),
            ja4: None,
        }
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshot(dir.path());
    let reqs = requests();
    // Built once: the ruleset has no `rate` condition, so nothing in them changes per request.
    let facts: Vec<RequestFacts> = reqs.iter().map(Req::facts).collect();
    let trusted = CidrSet::new(["127.0.0.1/32".parse().unwrap()]);
    let source = ClientIpHeader::XForwardedFor;
    let ip_of = |r: &Req| client_ip(r.peer, &r.headers, &trusted, &source);
    let visitor = |r: &Req| {
        let ua = r.headers.get("user-agent").and_then(|v| v.to_str().ok());
        snap.intel.visitor(ip_of(r), ua, Default::default())
    };

    let mut g = c.benchmark_group("decision");
    g.bench_function("answer (identity+rules+action)", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % reqs.len();
            // The function the proxy calls: identity, rules, shadow and what to do.
            let answer = snap.answer(
                ip_of(&reqs[i]),
                &facts[i],
                "019ad0f3-6c1e-7a51-9b7e-1f2e3d4c5b6a",
            );
            black_box(answer.decision);
        })
    });
    g.bench_function("identity", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % reqs.len();
            black_box(visitor(&reqs[i]))
        })
    });
    let visitors: Vec<_> = reqs.iter().map(visitor).collect();
    g.bench_function("rules", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % reqs.len();
            black_box(snap.rules.evaluate(&visitors[i], &facts[i]))
        })
    });
    g.bench_function("ua_classify", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % reqs.len();
            let ua = reqs[i]
                .headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok());
            black_box(snap.intel.ua.classify(ua))
        })
    });
    g.bench_function("ip_list_lookup", |b| {
        let ips: Vec<IpAddr> = visitors.iter().map(|v| v.ip).collect();
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % ips.len();
            black_box(snap.intel.lists[0].set.contains(ips[i]))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
