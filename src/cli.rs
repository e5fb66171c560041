//! The `flowgate` command: `run` (the default) and `check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};

use crate::admin::AdminService;
use crate::config::{self, Config, SinkKind};
use crate::events::{EventPolicy, EventQueue, EventWorker, FileSink, HttpSink, Sink};
use crate::listeners::Opened;
use crate::metrics::Metrics;
use crate::proxy::{App, Gateway};
use crate::snapshot::{Live, SampleRequest, Snapshot};

#[derive(Debug, Parser)]
#[command(
    name = "flowgate",
    version,
    about = "A traffic-filtering reverse proxy"
)]
pub struct Cli {
    /// The config file.
    #[arg(short, long, global = true, default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve traffic (the default).
    Run {
        /// Take the listening sockets from the running flowgate of this config (send it
        /// SIGQUIT after starting this one): a binary upgrade without dropping a connection.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate the config, rules and data files and run the rule tests; exit 1 on any problem.
    Check,
    /// Print the decision for a request and the trace of every flow and condition, as JSON.
    Explain(ExplainArgs),
    /// Work on stored click events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Work on intel data (IP lists, MaxMind databases).
    #[command(subcommand)]
    Intel(IntelCommand),
}

#[derive(Debug, Subcommand)]
pub enum IntelCommand {
    /// Download every list and database that has a `url`, validate it, swap it in atomically.
    Update,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Erase a visitor's events from the event files and the spool (the right to erasure).
    Forget {
        /// Every event from this address (as stored in full, or as today's and any
        /// still-kept day's pseudonym).
        #[arg(
            long,
            required_unless_present = "click_id",
            conflicts_with = "click_id"
        )]
        ip: Option<std::net::IpAddr>,
        /// Every event of this click: the click and its conversions.
        #[arg(long)]
        click_id: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// `https://host/path?query`, or `/path?query` with a Host header.
    #[arg(long, required_unless_present = "batch")]
    pub url: Option<String>,
    /// The visitor's address.
    #[arg(long)]
    pub ip: Option<std::net::IpAddr>,
    /// The visitor's user agent.
    #[arg(long)]
    pub ua: Option<String>,
    /// A request header, `Name: value`; repeatable.
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Read requests as JSON lines on stdin (`{"url", "ip", "ua", "headers": {..}}`) and write
    /// one answer per line.
    #[arg(long, conflicts_with = "url")]
    pub batch: bool,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init();
    match cli.command.unwrap_or(Command::Run { upgrade: false }) {
        Command::Run { upgrade } => run(&cli.config, upgrade),
        Command::Check => check(&cli.config),
        Command::Explain(args) => explain(&cli.config, &args),
        Command::Events(EventsCommand::Forget { ip, click_id }) => {
            forget(&cli.config, ip, click_id)
        }
        Command::Intel(IntelCommand::Update) => intel_update(&cli.config),
    }
}

fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|problems| {
        eprintln!("{problems}");
        eprintln!("{}: {} problem(s)", path.display(), problems.len());
        ExitCode::FAILURE
    })
}

fn check(path: &Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match Snapshot::build(&config, 0) {
        Ok(s) => {
            println!(
                "{}: ok ({} campaigns, {} routes, {} upstreams, {} ip lists, {} rule tests passed)",
                path.display(),
                s.rules.campaigns.len(),
                s.rules.routes.len(),
                s.rules.upstreams.len(),
                s.intel.lists.len(),
                s.tests
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("{problems}");
            eprintln!("{}: {} problem(s)", path.display(), problems.len());
            ExitCode::FAILURE
        }
    }
}

fn forget(path: &Path, ip: Option<std::net::IpAddr>, click_id: Option<String>) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut ips: Vec<String> = Vec::new();
    if let Some(ip) = ip {
        ips.push(ip.to_canonical().to_string());
        if config.privacy.salt_dir.is_dir() {
            if let Ok(p) = crate::events::Pseudonymizer::open(&config.privacy.salt_dir) {
                ips.extend(p.known_pseudonyms(ip));
            }
        }
    }
    let matches = |ev: &serde_json::Value| match &click_id {
        Some(id) => ev["click_id"].as_str() == Some(id.as_str()),
        None => ev["ip"]
            .as_str()
            .is_some_and(|v| ips.iter().any(|i| i == v)),
    };
    let mut dirs = vec![config.events.file.dir.as_path()];
    if let Some(http) = &config.events.http {
        dirs.push(http.spool_dir.as_path());
    }
    let dirs: Vec<&Path> = dirs.into_iter().filter(|d| d.is_dir()).collect();
    match crate::events::forget(&dirs, &matches) {
        Ok(n) => {
            println!("removed {n} events");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("forget: {e}");
            ExitCode::FAILURE
        }
    }
}

fn intel_update(path: &Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let results = crate::identity::update::update_all(&config.intel);
    if results.is_empty() {
        println!("{}: no intel source has a url", path.display());
        return ExitCode::SUCCESS;
    }
    let mut failed = 0;
    for u in &results {
        match &u.result {
            Ok(bytes) => println!("{}: updated {} ({bytes} bytes)", u.key, u.file.display()),
            Err(e) => {
                failed += 1;
                eprintln!("{}: {}: {e}", u.key, u.file.display());
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn build_snapshot(path: &Path) -> Result<Snapshot, ExitCode> {
    let config = load_config(path)?;
    Snapshot::build(&config, 0).map_err(|problems| {
        eprintln!("{problems}");
        eprintln!("{}: {} problem(s)", path.display(), problems.len());
        ExitCode::FAILURE
    })
}

fn explain(path: &Path, args: &ExplainArgs) -> ExitCode {
    let snapshot = match build_snapshot(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if args.batch {
        return explain_batch(&snapshot);
    }
    let mut req = SampleRequest {
        url: args.url.clone().unwrap_or_default(),
        ip: args.ip,
        ua: args.ua.clone(),
        ..SampleRequest::default()
    };
    for h in &args.headers {
        let Some((name, value)) = h.split_once(':') else {
            eprintln!("-H {h:?}: expected 'Name: value'");
            return ExitCode::FAILURE;
        };
        req.headers
            .insert(name.trim().to_string(), value.trim().to_string());
    }
    match snapshot.explain(&req) {
        Ok(x) => {
            println!("{}", serde_json::to_string_pretty(&x).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// One JSON answer per input line; a bad line gets `{"error": ...}` and the rest go on.
fn explain_batch(snapshot: &Snapshot) -> ExitCode {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (n, line) in stdin.lines().enumerate() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = serde_json::from_str::<SampleRequest>(&line)
            .map_err(|e| format!("line {}: {e}", n + 1))
            .and_then(|req| {
                snapshot
                    .explain(&req)
                    .map_err(|e| format!("line {}: {e}", n + 1))
            });
        let written = match answer {
            Ok(x) => serde_json::to_writer(&mut out, &x).map_err(std::io::Error::other),
            Err(e) => serde_json::to_writer(&mut out, &serde_json::json!({ "error": e }))
                .map_err(std::io::Error::other),
        };
        if written.and_then(|()| out.write_all(b"\n")).is_err() {
            return ExitCode::FAILURE;
        }
    }
    if out.flush().is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The configured sink on its worker thread, and the queue requests feed it through.
fn start_events(
    config: &Config,
    policy: EventPolicy,
    metrics: Arc<Metrics>,
) -> std::io::Result<(EventQueue, Option<EventWorker>)> {
    let ev = &config.events;
    let sink: Box<dyn Sink> = match (*ev.sink, &ev.http) {
        (SinkKind::None, _) => return Ok((EventQueue::disabled(metrics), None)),
        (SinkKind::File, _) => {
            Box::new(FileSink::open(&ev.file, metrics.clone()).map_err(|e| {
                std::io::Error::other(format!("file.dir {}: {e}", ev.file.dir.display()))
            })?)
        }
        (SinkKind::Http, Some(http)) => {
            Box::new(HttpSink::open(http, metrics.clone()).map_err(|e| {
                std::io::Error::other(format!("http.spool_dir {}: {e}", http.spool_dir.display()))
            })?)
        }
        (SinkKind::Http, None) => {
            return Err(std::io::Error::other("sink: http needs events.http"))
        }
    };
    let (queue, worker) = EventWorker::start(sink, ev.queue, ev.batch.clone(), policy, metrics)?;
    Ok((queue, Some(worker)))
}

fn run(path: &Path, upgrade: bool) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    let metrics = match Metrics::new() {
        Ok(m) => Arc::new(m),
        Err(e) => {
            eprintln!("cannot register metrics: {e}");
            return ExitCode::FAILURE;
        }
    };
    let live = match Live::new(config.clone()) {
        Ok(l) => Arc::new(l),
        Err(problems) => {
            eprintln!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    // Watching from the moment the rules are read: a change while the rest starts (or while
    // an upgrade waits for the sockets) is not missed.
    crate::reload::record(&metrics, &live.current().report());
    if let Err(e) = crate::reload::on_change(live.clone(), metrics.clone()) {
        log::error!("watch: cannot start: {e}; rules reload on SIGHUP only");
    }
    let policy = match EventPolicy::new(&config.privacy) {
        Ok(p) => p,
        Err(e) => {
            let dir = config.privacy.salt_dir.display();
            eprintln!(
                "{}: privacy.salt_dir: cannot keep the salt in {dir}: {e}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let (events, worker) = match start_events(&config, policy, metrics.clone()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{}: events: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };

    // After SIGTERM pingora stops accepting, waits the grace period, then shuts the runtimes
    // down, which cancels whatever still runs: the grace period is the drain budget.
    let drain = config.shutdown_timeout.0.as_secs().max(1);
    let (upgrade_sock, pid_file) = config.process_files();
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let conf = ServerConf {
        upgrade_sock: upgrade_sock.to_string_lossy().into_owned(),
        pid_file: pid_file.to_string_lossy().into_owned(),
        threads,
        // One single-threaded runtime per core: a connection, its requests and its upstream
        // connections stay on the thread that serves it.
        work_stealing: false,
        grace_period_seconds: Some(drain),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    // The sockets are taken over here rather than by pingora's bootstrap, so their addresses
    // are known before the proxy is built (see `listeners`).
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let open = match Opened::open(&config, upgrade.then_some(upgrade_sock.as_path())) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let listen = open.listen(&config);
    let postback = config.postback.as_ref().map(|p| crate::proxy::Postback {
        path: p.path.value.clone(),
        token: p.resolved_token().map(String::from),
    });
    let in_flight = crate::lifecycle::InFlightCounter::default();
    let gateway = Arc::new(Gateway {
        in_flight: in_flight.clone(),
        postback,
        live: live.clone(),
        trusted_proxies: config.trusted_proxies(),
        client_ip_header: config.client_ip_source().clone(),
        events,
        metrics: metrics.clone(),
        limits: config.limits.clone(),
        admission: Arc::new(crate::proxy::admission::Admission::new(
            listen.clone(),
            &config.limits,
            metrics.clone(),
        )),
        proxy_protocol: listen
            .iter()
            .filter(|l| l.proxy_protocol)
            .copied()
            .collect(),
    });
    let ready_probe = open.first();
    let serving = open.summary();
    let admin_app = AdminService {
        metrics: metrics.clone(),
        live: live.clone(),
    };
    match open.into_services(&config, App(gateway), admin_app) {
        Ok((proxy, admin)) => {
            server.add_service(proxy);
            if let Some(admin) = admin {
                server.add_service(admin);
            }
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    crate::reload::on_sighup(live.clone(), metrics);

    let pid_file = match crate::lifecycle::PidFile::create(&pid_file) {
        Ok(p) => Some(p),
        Err(e) => {
            log::warn!("cannot write pid file {}: {e}", pid_file.display());
            None
        }
    };
    // Whoever gets there first — the drain watcher or the end of `server.run` — writes out
    // the queued events and removes the pid file.
    let finish = Arc::new(std::sync::Mutex::new(Some((worker, pid_file))));
    let finish_once = {
        let finish = finish.clone();
        move || {
            let taken = finish.lock().map(|mut f| f.take()).unwrap_or(None);
            if let Some((worker, pid_file)) = taken {
                if let Some(w) = worker {
                    w.close();
                }
                drop(pid_file);
            }
        }
    };
    crate::memory::trim_after_bursts(in_flight.clone());
    crate::lifecycle::exit_when_drained(
        server.watch_execution_phase(),
        in_flight,
        finish_once.clone(),
    );
    if let Some(first) = ready_probe {
        crate::lifecycle::notify_ready_when_listening(first);
    }
    crate::lifecycle::upgrade_on_sigusr2(config.path.clone());
    log::info!(
        "flowgate {} serving on {serving}",
        env!("CARGO_PKG_VERSION")
    );
    server.run(RunArgs::default());
    finish_once();
    log::info!("flowgate stopped");
    ExitCode::SUCCESS
}
