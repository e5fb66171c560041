//! A real Prometheus and its promtool (Debian's `prometheus` package), started by a test on
//! a free loopback port with its own config and data folder, scraping the flowgate the test
//! started. Without the package a test says so and passes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{dechunk, free_port};

pub const RULES: &str = "config/prometheus/flowgate.rules.yml";
pub const RULE_TESTS: &str = "config/prometheus/flowgate.rules.test.yml";

pub fn tool(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin").join(name);
    if path.exists() {
        return Some(path);
    }
    eprintln!("{name} is not installed (apt install prometheus); skipping");
    None
}

pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let Some(bin) = tool("promtool") else {
        return (true, String::new());
    };
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    if let Some(text) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write to promtool");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("promtool runs");
    (out.status.success(), super::said(&out))
}

/// `promtool check metrics` finds nothing to say about an exposition: it is returned for the
/// test to look into.
pub fn promtool_accepts(exposition: String) -> String {
    let (ok, out) = promtool(&["check", "metrics"], Some(&exposition));
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}"
    );
    exposition
}

pub struct Prometheus {
    child: Child,
    pub addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    pub fn start(bin: &Path, target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             rule_files: [\"{}\"]\n\
             scrape_configs:\n  - job_name: flowgate\n    static_configs: [ {{ targets: [\"{target}\"] }} ]\n",
            repo(RULES).display()
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        // Prometheus cannot report a port it chose: this one is picked just before it binds.
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The result of an instant query, or why it failed.
    pub fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let mut q = String::new();
        for b in expr.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => q.push(b as char),
                _ => q.push_str(&format!("%{b:02X}")),
            }
        }
        let body = http_get(self.addr, &format!("/api/v1/query?query={q}"))?;
        let body: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        match body["status"].as_str() {
            Some("success") => Ok(body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default()),
            _ => Err(body.to_string()),
        }
    }
}

/// A GET that reports a refused connection instead of panicking: Prometheus takes a moment
/// to listen.
pub fn http_get(addr: std::net::SocketAddr, target: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no head")?;
    Ok(
        match head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            true => dechunk(body),
            false => body.to_string(),
        },
    )
}
