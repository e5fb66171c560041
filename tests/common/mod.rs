//! Test harness: the real flowgate binary on free loopback ports, real upstream HTTP servers,
//! and a raw HTTP/1.1 client that shows exactly what went over the wire.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A response as received.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on a fresh connection and reads the whole answer.
pub fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect to flowgate");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: promo.example.com\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

pub fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", target, headers)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A real HTTP/1.1 server that answers every request with what it received, as JSON:
/// `{"server": NAME, "method", "target", "headers": {lowercase name: value}}`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn start(name: &'static str) -> Upstream {
        Self::start_with_delay(name, Duration::ZERO)
    }

    pub fn start_with_delay(name: &'static str, delay: Duration) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let h = h.clone();
                thread::spawn(move || serve(conn, name, delay, &h));
            }
        });
        Upstream { addr, hits }
    }
}

fn serve(conn: TcpStream, name: &str, delay: Duration, hits: &AtomicUsize) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    // Keep-alive: pingora pools upstream connections, so serve requests until EOF.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        hits.fetch_add(1, Ordering::SeqCst);
        thread::sleep(delay);
        let body = serde_json::json!({
            "server": name, "method": method, "target": target, "headers": headers,
        })
        .to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// A flowgate process serving a config and rules written to a temporary folder.
pub struct Flowgate {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Flowgate {
    /// `config_extra` is appended to a config with listeners, admin, rules and events set.
    pub fn start(config_extra: &str, rules: &str) -> Flowgate {
        let dir = tempfile::tempdir().unwrap();
        let (config, addr, admin) = write_setup(dir.path(), config_extra, rules);
        let child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .args(["run", "-c"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start flowgate");
        let fg = Flowgate {
            addr,
            admin,
            dir,
            child,
        };
        fg.wait_ready();
        fg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(self.admin).is_ok() && TcpStream::connect(self.addr).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "flowgate did not start listening on {} / {}",
            self.addr, self.admin
        );
    }

    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> Reply {
        get(self.addr, target, headers)
    }

    pub fn metrics(&self) -> String {
        get(self.admin, "/metrics", &[]).body
    }

    /// The value of one metric line, e.g. `flowgate_events_total{outcome="written"}`.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    pub fn events_dir(&self) -> PathBuf {
        self.dir.path().join("events")
    }

    /// Every click event written so far, waiting up to 5 s for at least `n`.
    pub fn events(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(self.events_dir())
                .into_iter()
                .flatten()
                .flatten()
            {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                for line in text.lines() {
                    out.push(serde_json::from_str(line).expect("each line is one JSON object"));
                }
            }
            if out.len() >= n || Instant::now() > deadline {
                return out;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    pub fn rules_dir(&self) -> PathBuf {
        self.dir.path().join("rules")
    }
}

impl Drop for Flowgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `flowgate.yaml` and `rules/main.yaml`; returns the config path and both addresses.
pub fn write_setup(
    dir: &Path,
    config_extra: &str,
    rules: &str,
) -> (PathBuf, SocketAddr, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/main.yaml"), rules).unwrap();
    let config = format!(
        "listen: [\"{addr}\"]\nadmin: {admin}\nrules: rules\nthreads: 2\nshutdown_timeout: 2s\n\
         events: {{ sink: file, file: {{ dir: events }}, batch: {{ max_wait: 100ms }} }}\n{config_extra}"
    );
    let path = dir.join("flowgate.yaml");
    std::fs::write(&path, config).unwrap();
    (path, addr, admin)
}

pub const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
pub const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Starts `flowgate run` (or `run --upgrade`) on a config; the caller owns the process.
pub fn spawn(config: &Path, upgrade: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowgate"));
    cmd.arg("run");
    if upgrade {
        cmd.arg("--upgrade");
    }
    cmd.arg("-c")
        .arg(config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

pub fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {addr}");
        thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// The value of one metric series on an admin listener.
pub fn metric_at(admin: SocketAddr, series: &str) -> f64 {
    get(admin, "/metrics", &[])
        .body
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Every event line in a folder's `.ndjson` files.
pub fn event_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "ndjson") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            out.extend(
                text.lines().map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).expect("whole JSON lines")
                }),
            );
        }
    }
    out
}

/// `write_setup`, with the harness's `events:` line replaced by `events`.
pub fn setup_with_events(
    dir: &Path,
    rules: &str,
    events: &str,
) -> (PathBuf, SocketAddr, SocketAddr) {
    let (config, addr, admin) = write_setup(dir, "", rules);
    let text: String = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("events:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&config, text + events).unwrap();
    (config, addr, admin)
}
