//! Debian's clickhouse-server (18.16), started by a test on free loopback ports with its own
//! config and data folder, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{dechunk, free_port, wait_for};

pub struct ClickHouse {
    dir: PathBuf,
    pub http: u16,
    child: Option<Child>,
}

impl ClickHouse {
    pub fn binary() -> Option<PathBuf> {
        [
            "/usr/bin/clickhouse-server",
            "/usr/sbin/clickhouse-server",
            "/usr/bin/clickhouse",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    }

    pub fn start(dir: &Path) -> ClickHouse {
        let (http, tcp) = (free_port(), free_port());
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(
            dir.join("config.xml"),
            format!(
                "<?xml version=\"1.0\"?><yandex><logger><level>warning</level><console>1</console></logger>\
                 <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port><listen_host>127.0.0.1</listen_host>\
                 <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><users_config>users.xml</users_config>\
                 <default_profile>default</default_profile><default_database>default</default_database>\
                 <mark_cache_size>5368709</mark_cache_size></yandex>",
                d = dir.display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("users.xml"),
            "<?xml version=\"1.0\"?><yandex><profiles><default></default></profiles><users><default>\
             <password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile>\
             <quota>default</quota></default></users><quotas><default></default></quotas></yandex>",
        )
        .unwrap();
        let mut ch = ClickHouse {
            dir: dir.to_path_buf(),
            http,
            child: None,
        };
        ch.restart();
        ch
    }

    pub fn restart(&mut self) {
        let bin = Self::binary().unwrap();
        let mut cmd = Command::new(&bin);
        if bin.ends_with("clickhouse") {
            cmd.arg("server");
        }
        let child = cmd
            .arg(format!(
                "--config-file={}",
                self.dir.join("config.xml").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for("clickhouse answers", Duration::from_secs(60), || {
            self.query("SELECT 1").is_ok()
        });
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn query(&self, sql: &str) -> Result<String, String> {
        let addr = format!("127.0.0.1:{}", self.http).parse().unwrap();
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        use std::io::{Read, Write};
        let req = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{sql}",
            sql.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        let (head, body) = out.split_once("\r\n\r\n").ok_or("no response")?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("{head}\n{body}"));
        }
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok(body)
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

impl ClickHouse {
    /// Runs every statement of a `.sql` script (`;` at line ends, `--` comments).
    pub fn load(&self, script: &str) {
        for stmt in script.split(';') {
            let sql: String = stmt
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            if !sql.trim().is_empty() {
                self.query(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// A query's rows, as JSON objects.
    pub fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        let body = self
            .query(&format!("{sql} FORMAT JSONEachRow"))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        body.lines()
            .map(|l| serde_json::from_str(l).expect("JSON rows"))
            .collect()
    }

    /// True where the test can run: CI must have the server; elsewhere it may be missing.
    pub fn available() -> bool {
        if Self::binary().is_some() {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install clickhouse-server"
        );
        println!("clickhouse-server is not installed: skipped (CI runs it)");
        false
    }
}
