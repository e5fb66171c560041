//! The binary is upgraded and the process drains, and no visitor notices: the new process
//! takes the listening sockets (SIGQUIT, or SIGUSR2 which starts it too), the old one answers
//! what it has and exits, every answered request has its event.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

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
    let upgrade_sock = dir.path().join("upgrade.sock");
    let extra = format!("upgrade_sock: {}\n", upgrade_sock.display());
    let config = write_setup(dir.path(), &extra, &page_rules("v0"));
    let main = dir.path().join("rules/main.yaml");
    let mut old = spawn(&config);
    let (addr, admin) = (old.addr(), old.admin());

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
                    // Visitors clicking along, not a flood that starves the reloads.
                    pace(Duration::from_millis(2));
                }
            })
        })
        .collect();

    let metric = |series: &str| metric_at(admin, series);
    for i in 1..=30 {
        let version = format!("v{i}");
        std::fs::write(&main, page_rules(&version)).unwrap();
        wait_for(&version, Duration::from_secs(10), || {
            get(addr, "/", &[]).body == version
        });
    }

    std::fs::write(
        &main,
        "campaigns: [ { id: c, flows: [ { name: f, to: nowhere } ] } ]\n",
    )
    .unwrap();
    wait_for("broken file refused", Duration::from_secs(3), || {
        metric(r#"flowgate_reloads_total{outcome="error"}"#) >= 1.0
    });
    assert_eq!(get(addr, "/", &[]).body, "v30");
    std::fs::write(&main, page_rules("v31")).unwrap();
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
    std::fs::write(&main, page_rules("v32")).unwrap();
    old.signal("HUP");
    wait_for("v32", Duration::from_secs(3), || {
        get(addr, "/", &[]).body == "v32"
    });

    // Binary upgrade: the new process takes the sockets, the old one drains and exits.
    let mut new = spawn_upgrade(&config);
    wait_for("the new process waits for the sockets", START, || {
        upgrade_sock.exists()
    });
    old.signal("QUIT");
    assert_eq!(
        new.addr(),
        addr,
        "the new process took the old one's socket"
    );
    let old_exit = old.wait();
    assert!(old_exit.success(), "old process: {old_exit:?}");
    assert_eq!(
        get(addr, "/", &[]).body,
        "v32",
        "the new process serves the same rules"
    );

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    new.signal("TERM");
    let started = Instant::now();
    let new_exit = new.wait();
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
    let config = write_setup(dir.path(), &extra, &page_rules("served"));
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_flowgate"));
    run.args(["run", "-c"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify_path);
    let mut old = Process::start(run, "error");
    let addr = old.addr();
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert_eq!(msg, format!("MAINPID={}\nREADY=1\n", old.id()));
    assert_eq!(get(addr, "/", &[]).body, "served", "ready means serving");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        old.id().to_string()
    );

    old.signal("USR2");
    let n = notify.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    let new_pid: u32 = msg
        .strip_prefix("MAINPID=")
        .and_then(|m| m.split('\n').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected notification {msg:?}"));
    assert_ne!(new_pid, old.id());
    // The successor reports through the stderr it inherited.
    let taken = old.nth_addr_of("listen[0]", 2);
    assert_eq!(taken, addr, "the successor took the socket");
    assert_eq!(get(addr, "/", &[]).body, "served");
    assert!(old.wait().success(), "the old process drains and exits");
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
    let config = write_setup(dir.path(), "", &rules);
    let mut child = spawn(&config);
    let addr = child.addr();
    let in_flight =
        std::thread::spawn(move || get(addr, "/slow?sub_id=drained", &[("User-Agent", CHROME)]));
    wait_for(
        "request reached the upstream",
        Duration::from_secs(5),
        || slow.hits.load(Ordering::SeqCst) == 1,
    );
    let started = Instant::now();
    child.signal("TERM");
    let reply = in_flight.join().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(child.wait().success());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "drained in {took:?}");
    let events: String = std::fs::read_dir(dir.path().join("events"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(events.contains("\"sub_id\":\"drained\""), "{events}");
}
