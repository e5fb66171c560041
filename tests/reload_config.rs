//! `flowgate.yaml` while serving: SIGHUP applies what a running process can change and names,
//! in its one reload line, what waits for a restart; a broken config changes nothing. And a
//! start that cannot bind its port fails at once, never ready.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const FORWARDED: (&str, &str) = ("X-Forwarded-For", "81.2.69.142");

/// The forwarding chain the upstream saw for one request sent with `FORWARDED`.
fn chain(addr: std::net::SocketAddr) -> String {
    let r = get(addr, "/", &[("User-Agent", CHROME), FORWARDED]);
    json(&r.body)["headers"]["x-forwarded-for"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn rewrite(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{from:?} not in the config");
    std::fs::write(config, text.replace(from, to)).unwrap();
}

#[test]
fn sighup_applies_hot_settings_and_names_the_cold_ones() {
    let up = Upstream::start("landing");
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), "", &proxy_rules(up.addr, "5s"));
    let fg = spawn_logging(&config, "info");
    assert_eq!(
        chain(fg.addr()),
        "81.2.69.142, 127.0.0.1",
        "loopback is trusted"
    );

    // Hot: who is trusted, and where events go. Cold: the thread count.
    rewrite(&config, "threads: 2", "threads: 1");
    rewrite(&config, "dir: events }", "dir: events-after }");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}trusted_proxies: [\"10.0.0.0/8\"]\n"),
    )
    .unwrap();
    fg.signal("HUP");
    let (line, _) = fg.wait_log(0, &["reload: snapshot 2 serving"]);
    assert!(
        line.ends_with("(events restarted); not applied, need a restart or upgrade: threads"),
        "{line}"
    );

    assert_eq!(
        chain(fg.addr()),
        "127.0.0.1",
        "loopback is no longer trusted"
    );
    let moved = poll_until(Duration::from_secs(30), || {
        let after = event_lines(&dir.path().join("events-after"));
        if after.is_empty() {
            Err(after)
        } else {
            Ok(after)
        }
    });
    assert_eq!(moved[0]["ip"], "127.0.0.1");

    // A config with a problem changes nothing: the last good one keeps serving.
    rewrite(&config, "threads: 1", "threads: 0");
    fg.signal("HUP");
    let (refused, _) = fg.wait_log(0, &["reload refused"]);
    assert!(
        refused.contains("previous config and snapshot keep serving"),
        "{refused}"
    );
    fg.wait_log(0, &["threads: must be at least 1"]);
    assert_eq!(chain(fg.addr()), "127.0.0.1");
    assert_eq!(
        metric_at(fg.admin(), "flowgate_reloads_total{outcome=\"error\"}"),
        1.0
    );
}

#[test]
fn trusted_proxies_from_a_named_list_follow_the_list_file() {
    let up = Upstream::start("landing");
    let dir = tempfile::tempdir().unwrap();
    let edges = dir.path().join("edges.txt");
    std::fs::write(&edges, "# the CDN's ranges\n10.0.0.0/8\n").unwrap();
    let extra = format!(
        "trusted_proxies: [\"192.0.2.1/32\", {{ list: edges }}]\n\
         intel: {{ lists: {{ edges: {} }} }}\n",
        edges.display()
    );
    let config = write_setup(dir.path(), &extra, &proxy_rules(up.addr, "5s"));
    let fg = spawn_logging(&config, "info");
    assert_eq!(chain(fg.addr()), "127.0.0.1", "loopback is in no list");

    std::fs::write(&edges, "10.0.0.0/8\n127.0.0.0/8\n").unwrap();
    fg.wait_log(0, &["reload: snapshot 2 serving"]);
    assert_eq!(
        chain(fg.addr()),
        "81.2.69.142, 127.0.0.1",
        "the list now names loopback"
    );
}

#[test]
fn a_trusted_proxy_list_must_name_an_intel_list() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(
        dir.path(),
        "trusted_proxies: [{ list: cloudflare }]\n",
        &page_rules("hi"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "trusted_proxies[0]: no list named \"cloudflare\" in intel.lists (lists: none)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_fails_the_start_at_once_and_never_reports_ready() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), "", &page_rules("hi"));
    rewrite(&config, LISTEN, &format!("listen: [\"127.0.0.1:{port}\"]"));
    rewrite(
        &config,
        "admin: 127.0.0.1:0",
        &format!("admin: 127.0.0.1:{admin}"),
    );

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["run", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let probe = std::net::TcpStream::connect(("127.0.0.1", admin));
        if probe.is_ok() {
            let r = get(
                std::net::SocketAddr::from(([127, 0, 0, 1], admin)),
                "/readyz",
                &[],
            );
            assert_ne!(r.status, 200, "ready while its port is someone else's");
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running after 5 s"
        );
        pace(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(!status.success());
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert_eq!(
        last,
        format!(
            "{}: listen[0] 127.0.0.1:{port}: Address already in use (os error 98)",
            config.display()
        )
    );
    drop(taken);
}
