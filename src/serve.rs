//! `flowgate run`: from a validated config to a serving process. The core first (metrics,
//! the live snapshot and its reloads, the event worker), then the server and its sockets,
//! then the gateway and the services, then signals and the process lifecycle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};

use crate::admin::AdminService;
use crate::config::{Config, Listen, SinkKind};
use crate::events::{EventPolicy, EventQueue, EventWorker, FileSink, HttpSink, Sink};
use crate::lifecycle::{InFlightCounter, PidFile};
use crate::listeners::{ListenError, Opened};
use crate::metrics::Metrics;
use crate::problem::Problems;
use crate::proxy::admission::Admission;
use crate::proxy::{App, Gateway, Postback};
use crate::snapshot::Live;

/// What stops `flowgate run` before it serves; printed as it is, exit 1.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("cannot register metrics: {0}")]
    Metrics(#[source] prometheus::Error),
    #[error("{0}")]
    Snapshot(Problems),
    #[error("{}: privacy.salt_dir: cannot keep the salt in {}: {source}", file.display(), dir.display())]
    Salt {
        file: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: events: {source}", file.display())]
    Events { file: PathBuf, source: EventsError },
    #[error("{}: {source}", file.display())]
    Listen { file: PathBuf, source: ListenError },
}

/// Why the configured event sink cannot start.
#[derive(Debug, thiserror::Error)]
enum EventsError {
    #[error("{key} {}: {source}", dir.display())]
    Dir {
        key: &'static str,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("sink: http needs events.http")]
    NoHttp,
    #[error("{0}")]
    Worker(#[source] std::io::Error),
}

/// Serves until the process is told to stop.
pub fn run(config: Config, upgrade: bool) -> ExitCode {
    match serve(Arc::new(config), upgrade) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// What the parts of the process share.
struct Core {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    live: Arc<Live>,
}

fn serve(config: Arc<Config>, upgrade: bool) -> Result<(), StartError> {
    let core = Core::start(config)?;
    let (events, worker) = core.events()?;
    let config = &core.config;
    let (upgrade_sock, pid_file) = config.process_files();
    let conf = server_conf(config, &upgrade_sock, &pid_file);
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    // The sockets are taken over here rather than by pingora's bootstrap, so their addresses
    // are known before the proxy is built (see `listeners`).
    server.bootstrap();
    let listen_failed = |source| StartError::Listen {
        file: config.path.clone(),
        source,
    };
    let open =
        Opened::open(config, upgrade.then_some(upgrade_sock.as_path())).map_err(listen_failed)?;
    let tls = open.tls(config).map_err(listen_failed)?;
    crate::reload::on_tls_change(tls.certs());
    let in_flight = InFlightCounter::default();
    let gateway = core.gateway(events, open.listen(config), tls, in_flight.clone());
    let ready_probe = open.first();
    let serving = open.summary();
    let admin_app = AdminService {
        in_flight: in_flight.clone(),
        metrics: core.metrics.clone(),
        live: core.live.clone(),
    };
    let (proxy, admin) = open
        .into_services(App(gateway), admin_app)
        .map_err(listen_failed)?;
    server.add_service(proxy);
    if let Some(admin) = admin {
        server.add_service(admin);
    }
    crate::reload::on_sighup(core.live.clone(), core.metrics.clone());

    let finish = finish_once(worker, &pid_file);
    crate::memory::trim_after_bursts(in_flight.clone());
    crate::lifecycle::exit_when_drained(server.watch_execution_phase(), in_flight, finish.clone());
    if let Some(first) = ready_probe {
        crate::lifecycle::notify_ready_when_listening(first);
    }
    crate::lifecycle::upgrade_on_sigusr2(config.path.clone());
    log::info!(
        "flowgate {} serving on {serving}",
        env!("CARGO_PKG_VERSION")
    );
    server.run(RunArgs::default());
    finish();
    log::info!("flowgate stopped");
    Ok(())
}

impl Core {
    /// Metrics, the first snapshot, and its reloads on file changes.
    fn start(config: Arc<Config>) -> Result<Core, StartError> {
        let metrics = Arc::new(Metrics::new().map_err(StartError::Metrics)?);
        let live = Live::serving(config.clone(), Some(metrics.clone()));
        let live = Arc::new(live.map_err(StartError::Snapshot)?);
        // Watching from the moment the rules are read: a change while the rest starts (or
        // while an upgrade waits for the sockets) is not missed.
        crate::reload::record(&metrics, &live.current().report());
        if let Err(e) = crate::reload::on_change(live.clone(), metrics.clone()) {
            log::error!("watch: cannot start: {e}; rules reload on SIGHUP only");
        }
        Ok(Core {
            config,
            metrics,
            live,
        })
    }

    /// The event queue, and the worker behind it unless events are off.
    fn events(&self) -> Result<(EventQueue, Option<EventWorker>), StartError> {
        let config = &self.config;
        let policy = EventPolicy::new(&config.privacy).map_err(|source| StartError::Salt {
            file: config.path.clone(),
            dir: config.privacy.salt_dir.clone(),
            source,
        })?;
        start_events(config, policy, self.metrics.clone()).map_err(|source| StartError::Events {
            file: config.path.clone(),
            source,
        })
    }

    /// The request path's shared state, for the listeners as opened (`listen`).
    fn gateway(
        &self,
        events: EventQueue,
        listen: Vec<Listen>,
        tls: crate::tls::Listeners,
        in_flight: InFlightCounter,
    ) -> Arc<Gateway> {
        let config = &self.config;
        let postback = config.postback.as_ref().map(|p| Postback {
            path: p.path.value.clone(),
            token: p.resolved_token().map(String::from),
        });
        let proxy_protocol = listen
            .iter()
            .filter(|l| l.proxy_protocol)
            .copied()
            .collect();
        let admission = Admission::new(listen, &config.limits, self.metrics.clone());
        Arc::new(Gateway {
            in_flight,
            postback,
            live: self.live.clone(),
            trusted_proxies: config.trusted_proxies(),
            client_ip_header: config.client_ip_source().clone(),
            events,
            metrics: self.metrics.clone(),
            limits: config.limits.clone(),
            admission: Arc::new(admission),
            proxy_protocol,
            tls,
        })
    }
}

/// Writes the pid file, and returns what writes out the queued events and removes the pid
/// file, once: whoever gets there first, the drain watcher or the end of `server.run`.
fn finish_once(worker: Option<EventWorker>, pid_file: &Path) -> impl Fn() + Clone + Send {
    let pid_file = match PidFile::create(pid_file) {
        Ok(p) => Some(p),
        Err(e) => {
            log::warn!("cannot write pid file {}: {e}", pid_file.display());
            None
        }
    };
    let finish = Arc::new(Mutex::new(Some((worker, pid_file))));
    move || {
        let taken = finish.lock().map(|mut f| f.take()).unwrap_or(None);
        if let Some((worker, pid_file)) = taken {
            if let Some(w) = worker {
                w.close();
            }
            drop(pid_file);
        }
    }
}

fn server_conf(config: &Config, upgrade_sock: &Path, pid_file: &Path) -> ServerConf {
    // After SIGTERM pingora stops accepting, waits the grace period, then shuts the runtimes
    // down, which cancels whatever still runs: the grace period is the drain budget.
    let drain = config.shutdown_timeout.0.as_secs().max(1);
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    ServerConf {
        upgrade_sock: upgrade_sock.to_string_lossy().into_owned(),
        pid_file: pid_file.to_string_lossy().into_owned(),
        threads,
        // One single-threaded runtime per core: a connection, its requests and its upstream
        // connections stay on the thread that serves it.
        work_stealing: false,
        grace_period_seconds: Some(drain),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    }
}

/// The configured sink on its worker thread, and the queue requests feed it through.
fn start_events(
    config: &Config,
    policy: EventPolicy,
    metrics: Arc<Metrics>,
) -> Result<(EventQueue, Option<EventWorker>), EventsError> {
    let ev = &config.events;
    let sink: Box<dyn Sink> = match (*ev.sink, &ev.http) {
        (SinkKind::None, _) => return Ok((EventQueue::disabled(metrics), None)),
        (SinkKind::File, _) => Box::new(
            FileSink::open(&ev.file, metrics.clone()).map_err(in_dir("file.dir", &ev.file.dir))?,
        ),
        (SinkKind::Http, Some(http)) => Box::new(
            HttpSink::open(http, metrics.clone())
                .map_err(in_dir("http.spool_dir", &http.spool_dir))?,
        ),
        (SinkKind::Http, None) => return Err(EventsError::NoHttp),
    };
    let (queue, worker) = EventWorker::start(sink, ev.queue, ev.batch.clone(), policy, metrics)
        .map_err(EventsError::Worker)?;
    Ok((queue, Some(worker)))
}

/// A sink that cannot open its folder, named by its config key.
fn in_dir(key: &'static str, dir: &Path) -> impl FnOnce(std::io::Error) -> EventsError {
    let dir = dir.to_path_buf();
    move |source| EventsError::Dir { key, dir, source }
}
