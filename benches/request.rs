//! The request path around the decision, without sockets: the canonical path, and the
//! upstream request built from a browser's headers (hop-by-hop headers dropped, forwarding
//! headers added), and the upstream's response headers cleaned.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use flowgate::proxy::body::Body;
use flowgate::proxy::headers::{clean_response, upstream_request, Forwarding};
use http::{HeaderMap, HeaderValue, Request};

fn browser_request() -> http::request::Parts {
    let req = Request::builder()
        .uri("/lp?gclid=abc123&utm_source=fb")
        .header("host", "promo.example.com")
        .header("user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
        .header("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
        .header("accept-language", "en-US,en;q=0.9")
        .header("accept-encoding", "gzip, deflate, br")
        .header("referer", "https://www.facebook.com/")
        .header("connection", "keep-alive")
        .header("cookie", "_ga=GA1.2.1234567890.1700000000")
        .header("x-forwarded-for", "203.0.113.7")
        .body(())
        .unwrap();
    req.into_parts().0
}

fn paths(c: &mut Criterion) {
    c.bench_function("path: canonical /lp/spring-offer", |b| {
        b.iter(|| flowgate::path::normalize(black_box("/lp/spring-offer/index.html")))
    });
    c.bench_function("path: hostile /a/./b/../%2e%2e/%61dmin//x", |b| {
        b.iter(|| flowgate::path::normalize(black_box("/a/./b/../%2e%2e/%61dmin//x")))
    });
}

fn upstream(c: &mut Criterion) {
    let parts = browser_request();
    let target: http::Uri = "/safe/lp?gclid=abc123&utm_source=fb".parse().unwrap();
    let (peer, client) = ("127.0.0.1".parse().unwrap(), "203.0.113.7".parse().unwrap());
    c.bench_function(
        "upstream request (forwarding values built) from 9 browser headers",
        |b| {
            b.iter_batched(
                || parts.headers.clone(),
                |h| {
                    let h = black_box(h);
                    let fwd = Forwarding::new(
                        &h,
                        peer,
                        true,
                        client,
                        "019ad0f3-6c1e-7a51-9b7e-1f2e3d4c5b6a",
                    );
                    upstream_request(&parts.method, h, &target, fwd, false, Body::empty())
                },
                criterion::BatchSize::SmallInput,
            )
        },
    );
    let mut nginx = HeaderMap::new();
    for (k, v) in [
        ("server", "nginx/1.22.1"),
        ("date", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ("content-type", "text/html"),
        ("content-length", "3074"),
        ("last-modified", "Mon, 30 Nov 2026 10:00:00 GMT"),
        ("connection", "keep-alive"),
        ("etag", "\"6568a1b0-c02\""),
        ("accept-ranges", "bytes"),
    ] {
        nginx.insert(k, HeaderValue::from_static(v));
    }
    c.bench_function("upstream response headers cleaned", |b| {
        b.iter_batched_ref(
            || nginx.clone(),
            |h| clean_response(h, false),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, paths, upstream);
criterion_main!(benches);
