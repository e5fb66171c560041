//! The `flowgate` command: `run` (the default) and `check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use pingora::proxy::http_proxy_service_with_name;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::listening::Service;

use crate::config::{self, Config, SinkKind};
use crate::events::{EventPolicy, EventQueue, EventWorker, FileSink};
use crate::metrics::{AdminService, Metrics};
use crate::proxy::Gateway;
use crate::snapshot::{Live, Snapshot};

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
    Run,
    /// Validate the config, rules and data files; exit 1 on any problem.
    Check,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config),
        Command::Check => check(&cli.config),
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
                "{}: ok ({} campaigns, {} routes, {} upstreams, {} ip lists)",
                path.display(),
                s.rules.campaigns.len(),
                s.rules.routes.len(),
                s.rules.upstreams.len(),
                s.intel.lists.len()
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

fn run(path: &Path) -> ExitCode {
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
    let live = match Live::new(config.clone(), metrics.clone()) {
        Ok(l) => Arc::new(l),
        Err(problems) => {
            eprintln!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    let (events, worker) = match *config.events.sink {
        SinkKind::File => {
            let dir = &config.events.file.dir;
            let started = FileSink::open(dir)
                .and_then(|sink| EventWorker::start(sink, config.events.queue, metrics.clone()));
            match started {
                Ok((q, w)) => (q, Some(w)),
                Err(e) => {
                    eprintln!(
                        "{}: events.file.dir: cannot write to {}: {e}",
                        path.display(),
                        dir.display()
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
        SinkKind::None | SinkKind::Http => (EventQueue::disabled(metrics.clone()), None),
    };

    let grace = config.shutdown_timeout.0.as_secs().max(1);
    let conf = ServerConf {
        threads: config
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        // After SIGTERM: keep accepting for a moment while the balancer notices, then give
        // in-flight requests the configured time to finish.
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(grace),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let gateway = Gateway {
        live: live.clone(),
        trusted_proxies: config.trusted_proxies(),
        client_ip_header: config.client_ip_source(),
        events,
        policy: EventPolicy::new(&config.privacy),
        metrics: metrics.clone(),
    };
    let mut proxy = http_proxy_service_with_name(&server.configuration, gateway, "flowgate");
    for addr in &config.listen {
        proxy.add_tcp(&addr.to_string());
    }
    for t in &config.tls {
        let (cert, key) = (t.cert.to_string_lossy(), t.key.to_string_lossy());
        if let Err(e) = proxy.add_tls(&t.listen.to_string(), &cert, &key) {
            eprintln!("{}: tls {}: {e}", path.display(), t.listen);
            return ExitCode::FAILURE;
        }
    }
    server.add_service(proxy);
    if let Some(admin) = &config.admin {
        let mut service = Service::new("admin".to_string(), AdminService { metrics });
        service.add_tcp(&admin.to_string());
        server.add_service(service);
    }
    reload_on_sighup(live);

    log::info!(
        "flowgate {} serving on {:?}, admin on {:?}",
        env!("CARGO_PKG_VERSION"),
        config.listen,
        config.admin.as_ref().map(|a| a.value)
    );
    server.run(RunArgs::default());
    if let Some(w) = worker {
        w.close();
    }
    log::info!("flowgate stopped");
    ExitCode::SUCCESS
}

/// SIGHUP rebuilds the snapshot from disk; a failed build keeps the current one.
fn reload_on_sighup(live: Arc<Live>) {
    let spawned = std::thread::Builder::new()
        .name("flowgate-reload".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return log::error!("reload: cannot start: {e}"),
            };
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let mut hup = match signal(SignalKind::hangup()) {
                    Ok(s) => s,
                    Err(e) => return log::error!("reload: cannot watch SIGHUP: {e}"),
                };
                while hup.recv().await.is_some() {
                    match live.reload() {
                        Ok(generation) => log::info!("reload: snapshot {generation} serving"),
                        Err(problems) => {
                            log::error!(
                                "reload refused, previous snapshot keeps serving:\n{problems}"
                            )
                        }
                    }
                }
            });
        });
    if let Err(e) = spawned {
        log::error!("reload: cannot start: {e}");
    }
}
