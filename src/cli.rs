//! The `flowgate` command and its subcommands; `run` (the default) is `serve`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config, Secrets};
use crate::snapshot::{SampleRequest, Snapshot};

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
    /// Print the ClickHouse schema (config/clickhouse/) with the configured database, table
    /// and click retention (`events.file.retain`) filled in.
    Schema {
        /// The schema for ClickHouse 18.16 (Debian's), which has no TTL.
        #[arg(long)]
        fallback: bool,
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
    /// The TLS client's JA4 fingerprint, for `ja4` conditions.
    #[arg(long)]
    pub ja4: Option<String>,
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
        Command::Run { upgrade } => match load_config(&cli.config, Secrets::Used) {
            Ok(config) => crate::serve::run(config, upgrade),
            Err(code) => code,
        },
        Command::Check => crate::check::check(&cli.config),
        Command::Explain(args) => explain(&cli.config, &args),
        Command::Events(EventsCommand::Forget { ip, click_id }) => {
            forget(&cli.config, ip, click_id)
        }
        Command::Events(EventsCommand::Schema { fallback }) => schema(&cli.config, fallback),
        Command::Intel(IntelCommand::Update) => intel_update(&cli.config),
    }
}

/// The config, with its `log.format` applied to every line from here on.
fn load_config(path: &Path, secrets: Secrets) -> Result<Config, ExitCode> {
    let config = Config::load_for(path, secrets).map_err(|problems| {
        eprintln!("{problems}");
        eprintln!("{}: {} problem(s)", path.display(), problems.len());
        ExitCode::FAILURE
    })?;
    crate::logging::set_format(config.log.format);
    Ok(config)
}

fn forget(path: &Path, ip: Option<std::net::IpAddr>, click_id: Option<String>) -> ExitCode {
    let config = match load_config(path, Secrets::Unused) {
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
    // The visitor's click ids, seen in its events: what its postback jobs are found by.
    let clicks = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let matches = |ev: &serde_json::Value| {
        let hit = match &click_id {
            Some(id) => ev["click_id"].as_str() == Some(id.as_str()),
            None => ev["ip"]
                .as_str()
                .is_some_and(|v| ips.iter().any(|i| i == v)),
        };
        if let (true, Some(id)) = (hit, ev["click_id"].as_str()) {
            clicks.borrow_mut().insert(id.to_string());
        }
        hit
    };
    let mut dirs = vec![config.events.file.dir.as_path()];
    if let Some(http) = &config.events.http {
        dirs.push(http.spool_dir.as_path());
    }
    let dirs: Vec<&Path> = dirs.into_iter().filter(|d| d.is_dir()).collect();
    // Files first: they are erased even when ClickHouse does not answer, and a second run
    // (forget is idempotent) finishes the job there.
    let mut ok = match crate::events::forget(&dirs, &matches) {
        Ok(n) => {
            println!("removed {n} events");
            true
        }
        Err(e) => {
            eprintln!("forget: {e}");
            false
        }
    };
    // Conversions still waiting for their traffic source (and those it refused), by click.
    if let Some(id) = &click_id {
        clicks.borrow_mut().insert(id.clone());
    }
    let jobs = postback_spools(&config.state.dir().join("postbacks"));
    let jobs: Vec<&Path> = jobs.iter().map(PathBuf::as_path).collect();
    let of_visitor = |job: &serde_json::Value| {
        job["click_id"]
            .as_str()
            .is_some_and(|c| clicks.borrow().contains(c))
    };
    match crate::events::forget(&jobs, &of_visitor) {
        Ok(0) => {}
        Ok(n) => println!("removed {n} postback jobs"),
        Err(e) => {
            eprintln!("forget: postback spool: {e}");
            ok = false;
        }
    }
    // The state store next: it holds the visitor's clicks and last-seen times.
    let who = match (ip, &click_id) {
        (Some(ip), _) => Some(StoreForget::Ip(ip)),
        (None, Some(id)) => Some(StoreForget::ClickId(id.clone())),
        (None, None) => None,
    };
    match who.map(|who| forget_in_store(&config, who)) {
        Some(Ok(Some(gone))) => println!(
            "removed {} clicks and {} visitor records from the state store",
            gone.clicks, gone.visitors
        ),
        Some(Ok(None)) | None => {}
        Some(Err(e)) => {
            match &config.state.redis {
                Some(_) => eprintln!("forget: {e}"),
                None => eprintln!("forget: {}: {e}", config.state.path.display()),
            }
            ok = false;
        }
    };
    let clickhouse = config
        .events
        .http
        .as_ref()
        .and_then(|h| Some((h, h.clickhouse.as_ref()?)));
    if let Some((http, ch)) = clickhouse {
        use crate::events::clickhouse::{erase, Server, Whom};
        let server = Server::new(http, ch);
        let whom = match &click_id {
            Some(id) => Whom::ClickId(id),
            None => Whom::Ips(&ips),
        };
        match erase(&server, &whom) {
            Ok(tables) => {
                for t in tables {
                    let how = t.how.map(|h| format!(" ({h})")).unwrap_or_default();
                    println!(
                        "removed {} rows from {} {}{how}",
                        t.rows,
                        server.name(),
                        t.table
                    );
                }
            }
            Err(e) => {
                eprintln!("forget: {e}; the visitor's rows there are not erased: run forget again once it answers");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn schema(path: &Path, fallback: bool) -> ExitCode {
    use crate::events::clickhouse::{schema, Schema};
    let config = match load_config(path, Secrets::Unused) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let which = if fallback {
        Schema::Fallback
    } else {
        Schema::Current
    };
    let ch = config
        .events
        .http
        .as_ref()
        .and_then(|h| h.clickhouse.as_ref());
    let (database, table) = match ch {
        Some(ch) => (ch.database.value.as_str(), ch.table.value.as_str()),
        None => ("flowgate", which.shipped_table()),
    };
    print!(
        "{}",
        schema(which, database, table, config.events.file.retain.0)
    );
    ExitCode::SUCCESS
}

enum StoreForget {
    Ip(std::net::IpAddr),
    ClickId(String),
}

/// Erases the visitor's clicks and last-seen times from the state store (beside a running
/// flowgate: SQLite's WAL lets both write). `None` when there is no store yet.
fn forget_in_store(
    config: &Config,
    who: StoreForget,
) -> Result<Option<crate::state::Forgotten>, String> {
    use crate::state::{Forget, Keys, RedisStore, Sqlite, Store};
    let state = &config.state;
    if let Some(url) = &state.redis {
        let redis_err = |e: crate::state::StoreError| format!("state.redis: {e}");
        let mut store = RedisStore::open(&url.value, state.retention.0).map_err(redis_err)?;
        let who = match who {
            StoreForget::Ip(ip) => Forget::IpKeys(store.keys().map_err(redis_err)?.ip_keys(ip)),
            StoreForget::ClickId(id) => Forget::ClickId(id),
        };
        return store.forget(&who).map(Some).map_err(redis_err);
    }
    if !state.path.is_file() {
        return Ok(None);
    }
    let who = match who {
        StoreForget::Ip(ip) => {
            let keys = Keys::open(state.dir(), state.retention.0).map_err(|e| e.to_string())?;
            Forget::IpKeys(keys.ip_keys(ip))
        }
        StoreForget::ClickId(id) => Forget::ClickId(id),
    };
    let mut store = Sqlite::open(&state.path).map_err(|e| e.to_string())?;
    store.forget(&who).map(Some).map_err(|e| e.to_string())
}

fn intel_update(path: &Path) -> ExitCode {
    let config = match load_config(path, Secrets::Unused) {
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
    let config = load_config(path, Secrets::Unused)?;
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
        ja4: args.ja4.clone(),
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

/// Every folder of the postback spool: one per source, and each one's `rejected/`.
fn postback_spools(root: &Path) -> Vec<PathBuf> {
    let sources = std::fs::read_dir(root).into_iter().flatten().flatten();
    sources
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .flat_map(|p| [p.join("rejected"), p])
        .filter(|p| p.is_dir())
        .collect()
}
