//! Live operations: what pinning the serving snapshot costs each request, and how long a
//! reload takes for a large ruleset (1,000 flows) with a 1,000,000-network IP list.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use flowgate::config::Config;
use flowgate::snapshot::{Live, Snapshot};

fn big_rules(dir: &Path) {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    let mut r = String::from(
        "routes:\n  offer: { respond: { body: offer } }\n  safe: { respond: { body: safe } }\ncampaigns:\n",
    );
    for c in 0..20 {
        r.push_str(&format!(
            "  - id: c{c}\n    match: {{ host: \"*\", path_prefix: /c{c}/ }}\n    flows:\n"
        ));
        for f in 0..49 {
            let cond = match f % 5 {
                0 => "{ ip_list: [big] }".to_string(),
                1 => format!("{{ ua: \"(?i)tool{f}|agent{c}\" }}"),
                2 => "{ country: [US, CA, GB, DE] }".to_string(),
                3 => format!("{{ param: {{ sub{f}: \"^[0-9]+$\" }} }}"),
                _ => format!("{{ path: [/c{c}/p{f}/] }}"),
            };
            r.push_str(&format!("      - {{ name: f{f}, if: {cond}, to: safe }}\n"));
        }
        r.push_str("      - { name: rest, to: { offer: 50, safe: 50 } }\n");
    }
    std::fs::write(dir.join("rules/big.yaml"), r).unwrap();
}

fn million_cidrs(path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    // Deterministic, scattered /24s and /32s over the IPv4 space, plus some IPv6.
    let mut x: u32 = 0x9e37_79b9;
    for i in 0..1_000_000u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if i % 10 == 0 {
            writeln!(out, "2001:db8:{:x}:{:x}::/64", x >> 16, x & 0xffff).unwrap();
        } else if i % 2 == 0 {
            writeln!(
                out,
                "{}.{}.{}.0/24",
                x >> 24,
                (x >> 16) & 255,
                (x >> 8) & 255
            )
            .unwrap();
        } else {
            writeln!(
                out,
                "{}.{}.{}.{}",
                x >> 24,
                (x >> 16) & 255,
                (x >> 8) & 255,
                x & 255
            )
            .unwrap();
        }
    }
}

fn setup(dir: &Path) -> Config {
    big_rules(dir);
    million_cidrs(&dir.join("big.txt"));
    std::fs::write(
        dir.join("flowgate.yaml"),
        "rules: rules\nintel: { lists: { big: big.txt } }\nevents: { sink: none }\n",
    )
    .unwrap();
    Config::load(&dir.join("flowgate.yaml")).unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let snap = Snapshot::build(&config, 1).unwrap();
    let flows: usize = snap.rules.campaigns.iter().map(|c| c.flows.len()).sum();
    assert_eq!(flows, 1000);
    assert_eq!(snap.intel.lists[0].set.entries(), 1_000_000);
    println!(
        "1M-network list: {} bytes compiled ({:.1} bytes per network)",
        snap.intel.lists[0].set.heap_bytes(),
        snap.intel.lists[0].set.heap_bytes() as f64 / 1e6
    );
    drop(snap);

    let live = Live::new(Arc::new(config)).unwrap();

    let mut g = c.benchmark_group("live");
    g.bench_function("pin_snapshot", |b| b.iter(|| black_box(live.current())));
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("reload_1000_flows_1M_cidrs", |b| {
        b.iter(|| live.reload().unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
