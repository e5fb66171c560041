//! Visitor intelligence: MaxMind lookups, IP-list lookups (the real lists and a synthetic
//! 1,000,000-network list), and user-agent classification cold and cached.

use std::hint::black_box;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use flowgate::identity::{CidrSet, Crawlers, Mmdb, UaCache, UaClassifier, UaFacts};
use flowgate::problem::Problems;

fn data(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn mmdb(name: &str) -> Mmdb {
    Mmdb::open(&data(&format!("maxmind/{name}.mmdb")), &mut Problems::new()).unwrap()
}

fn xorshift(x: &mut u32) -> u32 {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    *x
}

fn million(path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = 0x9e37_79b9u32;
    for i in 0..1_000_000u32 {
        let v = xorshift(&mut x);
        if i % 10 == 0 {
            writeln!(out, "2001:db8:{:x}:{:x}::/64", v >> 16, v & 0xffff).unwrap();
        } else {
            writeln!(
                out,
                "{}.{}.{}.{}/{}",
                v >> 24,
                (v >> 16) & 255,
                (v >> 8) & 255,
                v & 255,
                24 + (v % 9)
            )
            .unwrap();
        }
    }
}

fn bench(c: &mut Criterion) {
    let ips: Vec<IpAddr> = [
        "81.2.69.142",
        "216.160.83.56",
        "1.128.0.1",
        "2001:218::1",
        "89.160.20.112",
        "8.8.8.8",
        "185.220.101.7",
        "203.0.113.9",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let mut g = c.benchmark_group("intel");
    let (country, city, asn, anon) = (
        mmdb("GeoIP2-Country-Test"),
        mmdb("GeoIP2-City-Test"),
        mmdb("GeoLite2-ASN-Test"),
        mmdb("GeoIP2-Anonymous-IP-Test"),
    );
    let mut i = 0;
    let mut next = || {
        i = (i + 1) % ips.len();
        ips[i]
    };
    g.bench_function("mmdb_country", |b| {
        b.iter(|| black_box(country.country(next())))
    });
    g.bench_function("mmdb_city_place", |b| {
        b.iter(|| black_box(city.place(next())))
    });
    g.bench_function("mmdb_asn", |b| b.iter(|| black_box(asn.asn(next()))));
    g.bench_function("mmdb_anonymous", |b| {
        b.iter(|| black_box(anon.anonymous(next())))
    });

    let mut problems = Problems::new();
    let tor = CidrSet::load(&data("ip-lists/tor-exit-nodes.txt"), &mut problems).unwrap();
    let dc = CidrSet::load(&data("ip-lists/datacenter-ipv4.txt"), &mut problems).unwrap();
    g.bench_function("list_tor_1746", |b| {
        b.iter(|| black_box(tor.contains(next())))
    });
    g.bench_function("list_datacenter_42k", |b| {
        b.iter(|| black_box(dc.contains(next())))
    });

    let dir = tempfile::tempdir().unwrap();
    million(&dir.path().join("1m.txt"));
    let big = CidrSet::load(&dir.path().join("1m.txt"), &mut problems).unwrap();
    println!(
        "1M list: {} networks in {} bytes = {:.1} bytes per network",
        big.entries(),
        big.heap_bytes(),
        big.heap_bytes() as f64 / big.entries() as f64
    );
    let mut x = 12345u32;
    let probes: Vec<IpAddr> = (0..4096)
        .map(|_| IpAddr::V4(xorshift(&mut x).into()))
        .collect();
    let mut j = 0;
    g.bench_function("list_1M_random_ipv4", |b| {
        b.iter(|| {
            j = (j + 1) & 4095;
            black_box(big.contains(probes[j]))
        })
    });

    let uas: Vec<String> = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        "curl/8.5.0",
    ]
    .map(String::from)
    .to_vec();
    let classifier = UaClassifier::default();
    let crawlers = Crawlers::default();
    // What `Intel::ua_facts` computes on a miss: the class, and a bot's crawler claim.
    let facts = |ua: Option<&str>| {
        let class = classifier.classify(ua);
        let claim = ua.filter(|_| class.bot).and_then(|u| crawlers.claim(u));
        UaFacts { class, claim }
    };
    let cache = UaCache::new(65_536);
    let mut k = 0;
    g.bench_function("ua_cold", |b| {
        b.iter(|| {
            k = (k + 1) % uas.len();
            black_box(classifier.classify(Some(&uas[k])))
        })
    });
    g.bench_function("ua_cached", |b| {
        b.iter(|| {
            k = (k + 1) % uas.len();
            black_box(cache.facts(Some(&uas[k]), facts))
        })
    });
    // A client rotating user agents: every one never seen before, so every request pays the
    // classifier in full, and the cache in front of it only churns (it stays bounded).
    let fresh = never_seen(200_000);
    let mut f = 0;
    g.bench_function("ua_never_seen", |b| {
        b.iter(|| {
            f = (f + 1) % fresh.len();
            black_box(classifier.classify(Some(&fresh[f])))
        })
    });
    let small = UaCache::new(4096);
    g.bench_function("ua_never_seen_through_cache", |b| {
        b.iter(|| {
            f = (f + 1) % fresh.len();
            black_box(small.facts(Some(&fresh[f]), facts))
        })
    });
    g.finish();
}

/// Real user agents of the corpora, each made new by a different build number, interleaved
/// with Android phones and tablets of made-up models.
fn never_seen(n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(data("user-agents/matomo-measure.tsv")).unwrap();
    let real: Vec<&str> = text.lines().filter_map(|l| l.split('\t').nth(1)).collect();
    let mut x = 0x2545_f491u32;
    (0..n)
        .map(|i| {
            let r = xorshift(&mut x);
            if i % 2 == 0 {
                let ua = real[r as usize % real.len()];
                match ua.find("Chrome/") {
                    Some(at) => format!("{}Chrome/{}.{}{}", &ua[..at], r % 140, i, &ua[at + 7..]),
                    None => format!("{ua} {}", i),
                }
            } else {
                format!(
                    "Mozilla/5.0 (Linux; Android {}; {}-{:X}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{}.0.{}.0 {}Safari/537.36",
                    8 + r % 7,
                    ["SM", "TB", "RMX", "CPH", "M2012"][(r >> 8) as usize % 5],
                    r >> 12,
                    100 + r % 30,
                    i,
                    if r & 1 == 0 { "Mobile " } else { "" }
                )
            }
        })
        .collect()
}

criterion_group!(benches, bench);
criterion_main!(benches);
