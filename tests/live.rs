//! Live operations: rules change under traffic, bad changes are refused, the binary is
//! upgraded and the process drains, and no visitor notices.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

fn rules_v(body: &str) -> String {
    format!("routes: {{ page: {{ respond: {{ body: \"{body}\" }} }} }}\ncampaigns: [ {{ id: c, flows: [ {{ name: f, to: page }} ] }} ]\n")
}

#[test]
fn a_rule_change_serves_within_a_second_without_a_signal() {
    let fg = Flowgate::start("", &rules_v("one"));
    let main = fg.rules_dir().join("main.yaml");
    std::fs::write(&main, rules_v("two")).unwrap();
    let took = wait_for("in-place write", Duration::from_secs(1), || {
        fg.get("/", &[]).body == "two"
    });
    println!("in-place write visible after {took:?}");

    // Editors and config managers write a temporary file and rename it over the old one.
    let tmp = fg.rules_dir().join(".main.yaml.tmp");
    std::fs::write(&tmp, rules_v("three")).unwrap();
    std::fs::rename(&tmp, &main).unwrap();
    wait_for("rename over", Duration::from_secs(1), || {
        fg.get("/", &[]).body == "three"
    });
    // The counter moves just after the swap a request can already see.
    wait_for("reloads counted", Duration::from_secs(1), || {
        fg.metric(r#"flowgate_reloads_total{outcome="ok"}"#) >= 2.0
    });
}

#[test]
fn a_swapped_symlinked_rules_folder_is_seen() {
    // As Kubernetes mounts a ConfigMap: rules -> ..data -> a versioned folder, swapped whole.
    let dir = tempfile::tempdir().unwrap();
    let (config, addr, _) = write_setup(dir.path(), "", &rules_v("unused"));
    let mount = dir.path().join("mount");
    for (v, body) in [("v1", "first"), ("v2", "second")] {
        std::fs::create_dir_all(mount.join(v)).unwrap();
        std::fs::write(mount.join(v).join("main.yaml"), rules_v(body)).unwrap();
    }
    std::os::unix::fs::symlink("v1", mount.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/main.yaml", mount.join("main.yaml")).unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("rules: rules", "rules: mount");
    std::fs::write(&config, text).unwrap();
    let mut child = spawn(&config, false);
    wait_listening(addr);
    assert_eq!(get(addr, "/", &[]).body, "first");

    std::os::unix::fs::symlink("v2", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    wait_for("symlink swap", Duration::from_secs(2), || {
        get(addr, "/", &[]).body == "second"
    });
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bad_changes_are_refused_and_the_old_rules_keep_serving() {
    let fg = Flowgate::start("", &rules_v("good"));
    let main = fg.rules_dir().join("main.yaml");

    std::fs::write(&main, "routes: [unclosed\n").unwrap();
    wait_for("syntax error refused", Duration::from_secs(10), || {
        fg.metric(r#"flowgate_reloads_total{outcome="error"}"#) >= 1.0
    });
    assert_eq!(fg.get("/", &[]).body, "good");

    std::fs::write(&main, rules_v("better")).unwrap();
    std::fs::create_dir_all(fg.rules_dir().join("tests")).unwrap();
    let failing = "- name: everyone gets the old page\n  request: { url: http://x/ }\n  expect: { route: nowhere }\n";
    std::fs::write(fg.rules_dir().join("tests/pages.yaml"), failing).unwrap();
    wait_for("failing rule test refused", Duration::from_secs(10), || {
        fg.metric(r#"flowgate_reloads_total{outcome="error"}"#) >= 2.0
    });
    assert_eq!(fg.get("/", &[]).body, "good");
    assert_eq!(get(fg.admin, "/readyz", &[]).status, 200);
    assert_eq!(fg.metric("flowgate_snapshot_generation"), 1.0);

    std::fs::write(
        fg.rules_dir().join("tests/pages.yaml"),
        failing.replace("nowhere", "page"),
    )
    .unwrap();
    wait_for("fixed test accepted", Duration::from_secs(10), || {
        fg.get("/", &[]).body == "better"
    });
}

#[test]
fn explain_shows_the_decision_and_every_condition() {
    let rules = r#"
routes:
  offer: { respond: { body: offer } }
  safe: { respond: { body: safe } }
campaigns:
  - id: spring
    flows:
      - name: automation
        if: { any: [ { bot: true }, { ip: "203.0.113.0/24" } ] }
        to: safe
      - name: paid
        if: { param: { gclid: present } }
        to: offer
      - { name: rest, to: safe }
"#;
    let fg = Flowgate::start("", rules);
    let ua = "Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)%20AppleWebKit/537.36%20(KHTML,%20like%20Gecko)%20Chrome/124.0.0.0%20Safari/537.36";
    let url = "http%3A%2F%2Fpromo.example.com%2Flp%3Fgclid%3Dx";
    let r = get(
        fg.admin,
        &format!("/explain?url={url}&ip=198.51.100.7&ua={ua}"),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let x = json(&r.body);
    assert_eq!(x["decision"]["flow"], "paid");
    assert_eq!(x["decision"]["route"], "offer");
    assert_eq!(x["visitor"]["ip"], "198.51.100.7");
    let steps: Vec<(String, String, bool)> = x["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["condition"].as_str().unwrap().to_string(),
                s["value"].as_str().unwrap().to_string(),
                s["result"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        steps.contains(&("if.any[0].bot".into(), "false".into(), false)),
        "{steps:?}"
    );
    assert!(
        steps.contains(&("if.any[1].ip".into(), "198.51.100.7".into(), false)),
        "{steps:?}"
    );
    assert!(
        steps.contains(&("if.param".into(), "gclid=x".into(), true)),
        "{steps:?}"
    );
    assert_eq!(get(fg.admin, "/explain?ip=1.2.3.4", &[]).status, 400);

    // The CLI gives the same answer, and replays traffic in batches.
    let config = fg.dir.path().join("flowgate.yaml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["explain", "--batch", "-c"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for i in 0..20_000 {
        let gclid = if i % 2 == 0 { "?gclid=1" } else { "" };
        input.push_str(&format!("{{\"url\": \"http://promo.example.com/{i}{gclid}\", \"ip\": \"198.51.100.{}\", \"ua\": \"{CHROME}\"}}\n", i % 250));
    }
    input.push_str("not json\n");
    let started = Instant::now();
    let mut stdin = cmd.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut out = String::new();
    cmd.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    writer.join().unwrap().unwrap();
    assert!(cmd.wait().unwrap().success());
    println!(
        "explain --batch: 20,000 requests in {:?}",
        started.elapsed()
    );
    let lines: Vec<serde_json::Value> = out.lines().map(json).collect();
    assert_eq!(lines.len(), 20_001);
    assert_eq!(lines[0]["decision"]["route"], "offer");
    assert_eq!(lines[1]["decision"]["route"], "safe");
    assert!(lines[20_000]["error"]
        .as_str()
        .unwrap()
        .contains("line 20001"));
}

#[test]
fn shadow_rules_are_counted_and_never_change_a_response() {
    let dir = tempfile::tempdir().unwrap();
    let shadow = dir.path().join("shadow");
    std::fs::create_dir_all(&shadow).unwrap();
    std::fs::write(
        shadow.join("main.yaml"),
        "routes: { page: { respond: { body: new } }, other: { respond: { body: other } } }\n\
         campaigns: [ { id: c, flows: [ { name: tools, if: { bot: true }, to: other }, { name: f, to: page } ] } ]\n",
    )
    .unwrap();
    let (config, addr, admin) = write_setup(
        dir.path(),
        &format!("shadow_rules: {}\n", shadow.display()),
        &rules_v("live"),
    );
    let mut child = spawn(&config, false);
    wait_listening(addr);
    for _ in 0..3 {
        assert_eq!(get(addr, "/", &[("User-Agent", CHROME)]).body, "live");
    }
    assert_eq!(get(addr, "/", &[("User-Agent", "curl/8")]).body, "live");
    let metrics = get(admin, "/metrics", &[]).body;
    assert!(metrics.contains(r#"flowgate_shadow_decisions_total{campaign="c",live_route="page",shadow_route="page"} 3"#), "{metrics}");
    assert!(metrics.contains(r#"flowgate_shadow_decisions_total{campaign="c",live_route="page",shadow_route="other"} 1"#), "{metrics}");
    let _ = child.kill();
    let _ = child.wait();
}

/// A browser-like client: keep-alive, and one retry on a fresh connection when the server
/// closed the kept-alive one.
struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    fn get(&mut self, target: &str) -> Result<(u16, String), String> {
        match self.try_get(target) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.conn = None;
                self.try_get(target)
            }
        }
    }

    fn try_get(&mut self, target: &str) -> Result<(u16, String), String> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).map_err(|e| format!("connect: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().unwrap();
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: promo.example.com\r\nUser-Agent: {CHROME}\r\n\r\n"
        );
        conn.get_mut()
            .write_all(req.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut status_line = String::new();
        if conn
            .read_line(&mut status_line)
            .map_err(|e| format!("read: {e}"))?
            == 0
        {
            return Err("closed".into());
        }
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("bad status line")?;
        let (mut len, mut close) = (0usize, false);
        loop {
            let mut h = String::new();
            conn.read_line(&mut h).map_err(|e| format!("read: {e}"))?;
            let h = h.trim_end().to_ascii_lowercase();
            if h.is_empty() {
                break;
            }
            if let Some(v) = h.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if h == "connection: close" {
                close = true;
            }
        }
        let mut body = vec![0; len];
        conn.read_exact(&mut body)
            .map_err(|e| format!("body: {e}"))?;
        if close {
            self.conn = None;
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

#[test]
fn rules_change_thirty_times_the_binary_upgrades_and_it_drains_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let (config, addr, admin) = write_setup(dir.path(), "", &rules_v("v0"));
    let main = dir.path().join("rules/main.yaml");
    let mut old = spawn(&config, false);
    wait_listening(addr);

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (stop, answered, failures) = (stop.clone(), answered.clone(), failures.clone());
            std::thread::spawn(move || {
                let mut client = Client { addr, conn: None };
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("{c}-{n}");
                    match client.get(&format!("/?sub_id={id}")) {
                        Ok((200, _)) => answered.lock().unwrap().push(id),
                        Ok((status, body)) => failures
                            .lock()
                            .unwrap()
                            .push(format!("{id}: {status} {body}")),
                        Err(e) => failures.lock().unwrap().push(format!("{id}: {e}")),
                    }
                    n += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();

    let metric = |series: &str| -> f64 {
        get(admin, "/metrics", &[])
            .body
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    for i in 1..=30 {
        std::fs::write(&main, rules_v(&format!("v{i}"))).unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    wait_for("30th version", Duration::from_secs(3), || {
        get(addr, "/", &[]).body == "v30"
    });

    std::fs::write(
        &main,
        "campaigns: [ { id: c, flows: [ { name: f, to: nowhere } ] } ]\n",
    )
    .unwrap();
    wait_for("broken file refused", Duration::from_secs(3), || {
        metric(r#"flowgate_reloads_total{outcome="error"}"#) >= 1.0
    });
    assert_eq!(get(addr, "/", &[]).body, "v30");
    std::fs::write(&main, rules_v("v31")).unwrap();
    std::fs::create_dir_all(dir.path().join("rules/tests")).unwrap();
    std::fs::write(
        dir.path().join("rules/tests/t.yaml"),
        "- { name: fails, request: { url: http://x/ }, expect: { route: missing } }\n",
    )
    .unwrap();
    wait_for("failing test refused", Duration::from_secs(3), || {
        metric(r#"flowgate_reloads_total{outcome="error"}"#) >= 2.0
    });
    assert_eq!(get(addr, "/", &[]).body, "v30");
    std::fs::remove_file(dir.path().join("rules/tests/t.yaml")).unwrap();
    wait_for("v31", Duration::from_secs(3), || {
        get(addr, "/", &[]).body == "v31"
    });
    std::fs::write(&main, rules_v("v32")).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &old.id().to_string()])
        .status();
    wait_for("v32", Duration::from_secs(3), || {
        get(addr, "/", &[]).body == "v32"
    });

    // Binary upgrade: the new process takes the sockets, the old one drains and exits.
    let mut new = spawn(&config, true);
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-QUIT", &old.id().to_string()])
        .status();
    let old_exit = old.wait().unwrap();
    assert!(old_exit.success(), "old process: {old_exit:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        get(addr, "/", &[]).body,
        "v32",
        "the new process serves the same rules"
    );

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let _ = Command::new("kill")
        .args(["-TERM", &new.id().to_string()])
        .status();
    let started = Instant::now();
    let new_exit = new.wait().unwrap();
    assert!(new_exit.success(), "new process: {new_exit:?}");
    println!("SIGTERM to exit: {:?}", started.elapsed());

    let failures = failures.lock().unwrap();
    let answered = answered.lock().unwrap();
    println!(
        "{} requests answered, {} failed",
        answered.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(answered.len() > 500, "traffic flowed: {}", answered.len());

    let mut logged = std::collections::HashSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path().join("events"))
        .unwrap()
        .flatten()
    {
        files += 1;
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let ev: serde_json::Value = serde_json::from_str(line).expect("whole JSON lines only");
            if let Some(id) = ev["query"]["sub_id"].as_str() {
                logged.insert(id.to_string());
            }
        }
    }
    assert_eq!(files, 2, "one event file per process");
    let missing: Vec<_> = answered.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} answered requests without an event: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[test]
fn sigusr2_hands_over_to_a_new_process_that_tells_systemd_it_is_main() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("flowgate.pid");
    let extra = format!("pid_file: {}\n", pid_file.display());
    let (config, addr, _) = write_setup(dir.path(), &extra, &rules_v("served"));
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut old = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["run", "-c"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("RUST_LOG", "error")
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert_eq!(msg, format!("MAINPID={}\nREADY=1\n", old.id()));
    assert_eq!(get(addr, "/", &[]).body, "served", "ready means serving");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        old.id().to_string()
    );

    let _ = Command::new("kill")
        .args(["-USR2", &old.id().to_string()])
        .status();
    let n = notify.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    let new_pid: u32 = msg
        .strip_prefix("MAINPID=")
        .and_then(|m| m.split('\n').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected notification {msg:?}"));
    assert_ne!(new_pid, old.id());
    assert_eq!(get(addr, "/", &[]).body, "served");
    assert!(
        old.wait().unwrap().success(),
        "the old process drains and exits"
    );
    assert_eq!(
        get(addr, "/", &[]).body,
        "served",
        "the successor serves alone"
    );
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        new_pid.to_string()
    );
    let _ = Command::new("kill")
        .args(["-TERM", &new_pid.to_string()])
        .status();
    // On its way out it removes the pid file it wrote.
    wait_for("successor exits", Duration::from_secs(15), || {
        !pid_file.exists()
    });
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_and_writes_its_event() {
    let slow = Upstream::start_with_delay("slow", Duration::from_millis(1500));
    let rules = format!(
        "upstreams: {{ slow: {{ peers: [\"{}\"] }} }}\nroutes: {{ page: {{ proxy: {{ upstream: slow }} }} }}\n\
         campaigns: [ {{ id: c, flows: [ {{ name: f, to: page }} ] }} ]\n",
        slow.addr
    );
    let dir = tempfile::tempdir().unwrap();
    let (config, addr, _) = write_setup(dir.path(), "", &rules);
    let mut child = spawn(&config, false);
    wait_listening(addr);
    let in_flight =
        std::thread::spawn(move || get(addr, "/slow?sub_id=drained", &[("User-Agent", CHROME)]));
    wait_for(
        "request reached the upstream",
        Duration::from_secs(5),
        || slow.hits.load(Ordering::SeqCst) == 1,
    );
    let started = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let reply = in_flight.join().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(child.wait().unwrap().success());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "drained in {took:?}");
    let events: String = std::fs::read_dir(dir.path().join("events"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(events.contains("\"sub_id\":\"drained\""), "{events}");
}
