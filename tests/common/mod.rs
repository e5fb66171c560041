//! Test harness: the real flowgate binary on loopback ports it picks itself, real upstream
//! servers, and raw HTTP/1.1 clients that show exactly what went over the wire.

// Each test binary uses a part of the harness.
#![allow(dead_code, unused_imports)]

pub mod analytics;
pub mod clickhouse;
mod client;
mod files;
mod process;
mod prometheus_server;
mod receiver;
mod redis_server;
mod relay;
mod request;
mod rules;
mod upstream;
mod wait;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

pub use client::*;
pub use files::*;
pub use process::*;
pub use prometheus_server::*;
pub use receiver::*;
pub use redis_server::*;
pub use relay::*;
pub use request::*;
pub use rules::*;
pub use upstream::*;
pub use wait::*;

pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// A port nothing listens on right now, for what must be told its port before it starts
/// (clickhouse-server, haproxy) or a port meant to be dead. flowgate picks its own.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
pub const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}
