//! `flowgate run`: from a validated config to a serving process. The core first (metrics,
//! the live snapshot and its reloads, the event worker), then the server and its sockets,
//! then the gateway and the services, then signals and the process lifecycle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};

use crate::admin::AdminService;
use crate::config::{Config, Listen};
use crate::events::LiveEvents;
use crate::lifecycle::{InFlightCounter, PidFile, Readiness};
use crate::listeners::{ListenError, Opened};
use crate::metrics::Metrics;
use crate::problem::Problems;
use crate::proxy::admission::Admission;
use crate::proxy::{App, Gateway};
use crate::snapshot::Live;
use crate::state::State;

/// What stops `flowgate run` before it serves; printed as it is, exit 1.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("cannot register metrics: {0}")]
    Metrics(#[source] prometheus::Error),
    #[error("{0}")]
    Snapshot(Problems),
    #[error("{0}")]
    Events(#[from] crate::events::StartError),
    #[error("{}: {source}", file.display())]
    State {
        file: PathBuf,
        source: crate::state::StateError,
    },
    #[error("{}: {source}", file.display())]
    Listen { file: PathBuf, source: ListenError },
    #[error("postbacks: cannot start the forwarder: {0}")]
    Postbacks(std::io::Error),
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
    state: Arc<State>,
}

fn serve(config: Arc<Config>, upgrade: bool) -> Result<(), StartError> {
    let core = Core::start(config)?;
    let (queue, worker) = crate::events::start(&core.config, core.metrics.clone())?;
    let events = Arc::new(LiveEvents::new(queue, worker));
    let postbacks = crate::postbacks::serving(
        core.live.clone(),
        events.clone(),
        core.config.state.dir(),
        core.metrics.clone(),
    )
    .map_err(StartError::Postbacks)?;
    let postbacks = Arc::new(postbacks);
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
    let listen = open.listen(config);
    let gateway = core.gateway(
        events.clone(),
        postbacks.clone(),
        listen,
        tls,
        in_flight.clone(),
    );
    let serving = open.summary();
    let ready = Readiness::default();
    let admin_app = AdminService {
        in_flight: in_flight.clone(),
        metrics: core.metrics.clone(),
        live: core.live.clone(),
        ready: ready.clone(),
    };
    let admission = gateway.admission.clone();
    let (proxy, admin) = open
        .into_services(App(gateway), admin_app, ready.clone())
        .map_err(listen_failed)?;
    server.add_service(proxy);
    if let Some(admin) = admin {
        server.add_service(admin);
    }
    crate::reload::on_sighup(crate::reload::Process {
        live: core.live.clone(),
        metrics: core.metrics.clone(),
        events: events.clone(),
        admission,
    });

    let finish = finish_once(events, postbacks, core.state.clone(), &pid_file);
    crate::memory::trim_after_bursts(in_flight.clone());
    let phases = server.watch_execution_phase();
    crate::lifecycle::exit_when_drained(phases, in_flight, ready, finish.clone());
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
        // Before the first snapshot: its caps start from the counts the store holds.
        let state = State::open(&config.state, &config.privacy.query_params, metrics.clone())
            .map_err(|source| StartError::State {
                file: config.path.clone(),
                source,
            })?;
        let caps = state.caps().clone();
        let live = Live::serving(config.clone(), Some(metrics.clone()), caps);
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
            state,
        })
    }

    /// The request path's shared state, for the listeners as opened (`listen`).
    fn gateway(
        &self,
        events: Arc<LiveEvents>,
        postbacks: Arc<crate::postbacks::Forwarder>,
        listen: Vec<Listen>,
        tls: crate::tls::Listeners,
        in_flight: InFlightCounter,
    ) -> Arc<Gateway> {
        let config = &self.config;
        let proxy_protocol = listen
            .iter()
            .filter(|l| l.proxy_protocol)
            .copied()
            .collect();
        let admission = Admission::new(listen, &config.limits, self.metrics.clone());
        Arc::new(Gateway {
            in_flight,
            live: self.live.clone(),
            events,
            metrics: self.metrics.clone(),
            admission: Arc::new(admission),
            proxy_protocol,
            tls,
            state: self.state.clone(),
            postbacks,
        })
    }
}

/// Writes the pid file, and returns what writes out the queued events and clicks and removes
/// the pid file, once: whoever gets there first, the drain watcher or the end of `server.run`.
fn finish_once(
    events: Arc<LiveEvents>,
    postbacks: Arc<crate::postbacks::Forwarder>,
    state: Arc<State>,
    pid_file: &Path,
) -> impl Fn() + Clone + Send {
    let pid_file = match PidFile::create(pid_file) {
        Ok(p) => Some(p),
        Err(e) => {
            log::warn!("cannot write pid file {}: {e}", pid_file.display());
            None
        }
    };
    let finish = Arc::new(Mutex::new(Some((events, postbacks, state, pid_file))));
    move || {
        let taken = finish.lock().map(|mut f| f.take()).unwrap_or(None);
        if let Some((events, postbacks, state, pid_file)) = taken {
            // Before the events: its last outcomes are events too.
            postbacks.close();
            events.close();
            state.close();
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
