//! What a TLS connection pays for its fingerprint: parsing a real ClientHello with
//! tls-parser and hashing it into JA4 (once per connection), and what a `ja4` condition costs
//! per request against a list of 100 fingerprints and 5 prefixes.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use flowgate::identity::Ja4;
use flowgate::rules::ja4::Ja4List;

fn vector(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ja4")
        .join(name);
    std::fs::read(path).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ja4");
    // Chrome's (GREASE, 16 extensions, 517 bytes) and an old client's 46 ciphers.
    for (label, file) in [
        ("chrome client hello", "latest.pcapng-1.bin"),
        ("46-cipher client hello", "tls-alpn-h2.pcap-0.bin"),
    ] {
        let record = vector(file);
        assert!(Ja4::of_client_hello(&record).is_some());
        g.bench_function(label, |b| {
            b.iter(|| Ja4::of_client_hello(black_box(&record)))
        });
    }
    let mut listed: Vec<String> = (0..100u32)
        .map(|i| format!("t13d1516h2_{i:012x}_e5627efa2ab1"))
        .collect();
    listed.extend(["t12d*", "q13*", "t13d1715h2_*", "t10*", "t13i*"].map(String::from));
    let list = Ja4List::parse(&listed).unwrap();
    let seen = Ja4::of_client_hello(&vector("latest.pcapng-1.bin")).unwrap();
    g.bench_function("condition (100 listed, 5 prefixes, no match)", |b| {
        b.iter(|| list.matches(black_box(seen.as_str())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
