//! The real flowgate binary. Every listener is on 127.0.0.1:0 and flowgate reports the
//! address it got ("listening on ADDR (NAME)" on stderr, NAME as in the config: `listen[0]`,
//! `tls[0]`, `admin`), which is also the sign that it serves there. The harness reads those
//! lines and passes all of stderr on to the test's output.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::client::{get, Reply};
use super::wait::{event_lines, metric_at, poll_until};

/// How long a start may take on a loaded machine.
pub const START: Duration = Duration::from_secs(20);

/// What a process reported on stderr: each listener's address, in order, and whether its
/// stderr has closed (it exited, and so did any successor it started).
#[derive(Default)]
struct Reports {
    seen: Mutex<(Vec<(String, SocketAddr)>, bool)>,
    /// Every line, for tests that wait for what the process says.
    lines: Mutex<Vec<String>>,
    changed: Condvar,
    logged: Condvar,
}

impl Reports {
    fn read(self: Arc<Self>, stderr: ChildStderr) {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(report) = listening(&line) {
                let mut seen = self.seen.lock().unwrap();
                seen.0.push(report);
                self.changed.notify_all();
            }
            self.lines.lock().unwrap().push(line.clone());
            self.logged.notify_all();
            eprintln!("{line}");
        }
        self.seen.lock().unwrap().1 = true;
        self.changed.notify_all();
    }

    /// The `n`th address (from 1) reported for listener `name`, waiting for it.
    fn nth(&self, name: &str, n: usize) -> SocketAddr {
        let deadline = Instant::now() + START;
        let mut seen = self.seen.lock().unwrap();
        loop {
            let mut of_name = seen.0.iter().filter(|(k, _)| k == name);
            if let Some((_, addr)) = of_name.nth(n - 1) {
                return *addr;
            }
            assert!(!seen.1, "flowgate exited before reporting {name} #{n}");
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "flowgate reported no {name} #{n} in {START:?}"
            );
            seen = self.changed.wait_timeout(seen, left).unwrap().0;
        }
    }
}

/// `listening on 127.0.0.1:41234 (listen[0])` → (`listen[0]`, the address); from a text
/// line or from a JSON one (`log: { format: json }`).
fn listening(line: &str) -> Option<(String, SocketAddr)> {
    let rest = match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v) if v["target"] == "flowgate::listeners" => v["msg"]
            .as_str()?
            .strip_prefix("listening on ")?
            .to_string(),
        Ok(_) => return None,
        Err(_) => line
            .split_once("flowgate::listeners] listening on ")?
            .1
            .to_string(),
    };
    let (addr, name) = rest.split_once(" (")?;
    Some((name.strip_suffix(')')?.to_string(), addr.parse().ok()?))
}

/// A running flowgate (or one about to take over from another); killed on drop.
pub struct Process {
    child: Child,
    reports: Arc<Reports>,
}

impl Process {
    /// Starts `cmd` with its stderr read for reports; `log` is the `RUST_LOG` level.
    pub fn start(mut cmd: Command, log: &str) -> Process {
        let mut child = cmd
            .env("RUST_LOG", format!("{log},flowgate::listeners=info"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start flowgate");
        let reports = Arc::new(Reports::default());
        let stderr = child.stderr.take().expect("piped stderr");
        let reading = reports.clone();
        std::thread::spawn(move || reading.read(stderr));
        Process { child, reports }
    }

    /// Where listener `name` (`listen[0]`, `tls[0]`, `admin`) serves, once it does.
    pub fn addr_of(&self, name: &str) -> SocketAddr {
        self.reports.nth(name, 1)
    }

    /// The address in the `n`th report of `name`: a successor started by this process
    /// reports through the same stderr.
    pub fn nth_addr_of(&self, name: &str, n: usize) -> SocketAddr {
        self.reports.nth(name, n)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr_of("listen[0]")
    }

    /// The first line on stderr, from line `from` (0: the start) on, that contains every one
    /// of `needles`, waiting up to 20 s for it; and the number of the line after it.
    pub fn wait_log(&self, from: usize, needles: &[&str]) -> (String, usize) {
        let deadline = Instant::now() + START;
        let mut lines = self.reports.lines.lock().unwrap();
        loop {
            let found = (lines.iter().enumerate().skip(from))
                .find(|(_, l)| needles.iter().all(|n| l.contains(n)));
            if let Some((i, l)) = found {
                return (l.clone(), i + 1);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "flowgate never logged {needles:?}");
            lines = self.reports.logged.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Every line on stderr so far.
    pub fn lines(&self) -> Vec<String> {
        self.reports.lines.lock().unwrap().clone()
    }

    pub fn admin(&self) -> SocketAddr {
        self.addr_of("admin")
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([&format!("-{sig}"), &self.id().to_string()])
            .status()
            .unwrap();
    }

    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `flowgate run [--upgrade] -c CONFIG`, not yet started.
pub fn command(config: &Path, upgrade: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowgate"));
    cmd.arg("run");
    if upgrade {
        cmd.arg("--upgrade");
    }
    cmd.arg("-c").arg(config);
    cmd
}

/// `flowgate ARGS -c CONFIG` (`check`, `events schema`, ...), run to its end.
pub fn flowgate_cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .expect("run flowgate")
}

/// What a command said: its stdout, then its stderr.
pub fn said(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// `flowgate_cli`'s exit code and what it said.
pub fn flowgate_said(config: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = flowgate_cli(config, args);
    (out.status.code(), said(&out))
}

/// Starts `flowgate run` on a config and returns once it serves on its main and admin
/// listeners; the caller owns the process.
pub fn spawn(config: &Path) -> Process {
    let p = Process::start(command(config, false), "error");
    p.addr();
    p.admin();
    p
}

/// `spawn`, with flowgate's own lines logged from `level` up (`info` shows reloads).
pub fn spawn_logging(config: &Path, level: &str) -> Process {
    let p = Process::start(command(config, false), &format!("error,flowgate={level}"));
    p.addr();
    p.admin();
    p
}

/// Starts `flowgate run --upgrade`, which waits for the running one to hand over its
/// sockets (send that one SIGQUIT) and only then reports them.
pub fn spawn_upgrade(config: &Path) -> Process {
    Process::start(command(config, true), "error")
}

/// A flowgate process serving a config and rules written to a temporary folder.
pub struct Flowgate {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub process: Process,
}

impl Flowgate {
    /// `config_extra` is appended to a config with listeners, admin, rules and events set.
    pub fn start(config_extra: &str, rules: &str) -> Flowgate {
        Flowgate::start_with_state(config_extra, rules, STATE)
    }

    /// The same with the harness's `state:` line replaced by `state`.
    pub fn start_with_state(config_extra: &str, rules: &str, state: &str) -> Flowgate {
        let dir = tempfile::tempdir().unwrap();
        let config = write_setup_with_state(dir.path(), config_extra, rules, state);
        let process = Process::start(command(&config, false), "warn");
        Flowgate {
            addr: process.addr(),
            admin: process.admin(),
            dir,
            process,
        }
    }

    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> Reply {
        get(self.addr, target, headers)
    }

    pub fn metrics(&self) -> String {
        get(self.admin, "/metrics", &[]).body
    }

    /// The value of one metric line, e.g. `flowgate_events_total{outcome="written"}`.
    pub fn metric(&self, series: &str) -> f64 {
        metric_at(self.admin, series)
    }

    pub fn events_dir(&self) -> PathBuf {
        self.dir.path().join("events")
    }

    /// Every click event written so far, once there are at least `n`. The limit is a bound
    /// for a machine loaded by the rest of the suite (5 s once proved too short), not a wait:
    /// this returns as soon as the events are there.
    pub fn events(&self, n: usize) -> Vec<serde_json::Value> {
        poll_until(START, || {
            let all = event_lines(&self.events_dir());
            if all.len() >= n {
                Ok(all)
            } else {
                Err(all)
            }
        })
    }

    pub fn signal(&self, sig: &str) {
        self.process.signal(sig);
    }

    pub fn rules_dir(&self) -> PathBuf {
        self.dir.path().join("rules")
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("flowgate.yaml")
    }

    /// `flowgate events forget ARGS` on this flowgate's files, beside it running: what it
    /// said on stdout, once it has succeeded.
    pub fn forget(&self, args: &[&str]) -> String {
        let out = flowgate_cli(&self.config(), &[&["events", "forget"], args].concat());
        assert!(
            out.status.success(),
            "{out:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

/// The listener lines of the harness's config, for tests that rewrite them.
pub const LISTEN: &str = "listen: [\"127.0.0.1:0\"]";

/// The harness's state store, in the test's folder.
const STATE: &str = "state: { path: state/state.db }\n";

/// Writes `flowgate.yaml` and `rules/main.yaml`; returns the config path.
pub fn write_setup(dir: &Path, config_extra: &str, rules: &str) -> PathBuf {
    write_setup_with_state(dir, config_extra, rules, STATE)
}

pub fn write_setup_with_state(dir: &Path, config_extra: &str, rules: &str, state: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/main.yaml"), rules).unwrap();
    let config = format!(
        "{LISTEN}\nadmin: 127.0.0.1:0\nrules: rules\nthreads: 2\nshutdown_timeout: 2s\n\
         events: {{ sink: file, file: {{ dir: events }}, batch: {{ max_wait: 100ms }} }}\n{config_extra}\n{state}"
    );
    let path = dir.join("flowgate.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

/// `write_setup`, with the harness's `events:` line replaced by `events`.
pub fn setup_with_events(dir: &Path, rules: &str, events: &str) -> PathBuf {
    let config = write_setup(dir, "", rules);
    let text: String = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("events:") && !l.starts_with("state:") && !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    // `events` goes where the test's line numbers expect it: right after the harness's lines.
    std::fs::write(&config, text + events + STATE).unwrap();
    config
}
