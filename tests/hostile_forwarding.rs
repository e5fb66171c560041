//! What a hostile visitor may claim about itself and its target, in raw bytes: one Host,
//! the target's own authority, no forwarding claims from an untrusted peer, no h2c, and an
//! answer (and its event) for a visitor that half-closes.

mod common;

use std::net::SocketAddr;

use common::*;

fn rules(upstream: SocketAddr) -> String {
    format!(
        "upstreams: {{ landing: {{ peers: [\"{upstream}\"] }} }}\n\
         routes: {{ a: {{ proxy: {{ upstream: landing, path: /a }} }}, b: {{ proxy: {{ upstream: landing, path: /b }} }} }}\n\
         campaigns:\n  - {{ id: a, match: {{ host: a.example }}, flows: [ {{ name: all, to: a }} ] }}\n\
         \x20 - {{ id: b, match: {{ host: b.example }}, flows: [ {{ name: all, to: b }} ] }}\n"
    )
}

fn echo(reply: &str) -> serde_json::Value {
    json(reply.split_once("\r\n\r\n").map_or("", |(_, b)| b))
}

#[test]
fn two_hosts_are_refused_and_an_absolute_target_names_the_host_upstream() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("", &rules(up.addr));
    let two = raw(
        fg.addr,
        "GET /x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    );
    assert!(two.starts_with("HTTP/1.1 400"), "{two}");
    let absolute = raw(
        fg.addr,
        "GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    );
    let seen = echo(&absolute);
    assert_eq!(seen["target"], "/a/x", "{absolute}");
    assert_eq!(
        seen["headers"]["host"], "a.example",
        "the campaign's host goes upstream"
    );
}

#[test]
fn forwarding_claims_from_an_untrusted_visitor_never_reach_the_upstream() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start(
        "trusted_proxies: []\nclient_ip_header: cf-connecting-ip\n",
        &rules(up.addr),
    );
    let reply = raw(
        fg.addr,
        "GET /x HTTP/1.1\r\nHost: a.example\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-Host: evil.example\r\n\
         X-Forwarded-Proto: https\r\nCF-Connecting-IP: 6.6.6.6\r\nConnection: close\r\n\r\n");
    let h = &echo(&reply)["headers"];
    assert!(
        h["forwarded"].is_null() && h["x-forwarded-host"].is_null(),
        "{h}"
    );
    assert!(h["x-forwarded-proto"].is_null(), "{h}");
    assert_eq!(
        h["cf-connecting-ip"], "127.0.0.1",
        "set to the visitor flowgate saw"
    );
    assert_eq!(h["x-real-ip"], "127.0.0.1");
}

#[test]
fn an_h2c_upgrade_is_not_passed_on() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("", &rules(up.addr));
    let reply = raw_half_closed(
        fg.addr,
        "GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
         HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n");
    let h = &echo(&reply)["headers"];
    assert!(
        h["upgrade"].is_null() && h["http2-settings"].is_null(),
        "{h}"
    );
}

#[test]
fn a_visitor_that_half_closes_still_gets_its_answer_and_event() {
    let up = Upstream::start("landing");
    let fg = Flowgate::start("", &rules(up.addr));
    let reply = raw_half_closed(fg.addr, "GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let events = fg.events(1);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["status"], 200);
}
