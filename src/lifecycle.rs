//! The process around the proxy: its pid file, readiness for systemd, and SIGUSR2, which
//! starts a successor that takes over the listening sockets (as nginx's binary upgrade does).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pingora::server::ExecutionPhase;

/// Writes our pid atomically; removes the file on drop if it is still ours.
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn create(path: &Path) -> std::io::Result<PidFile> {
        let tmp = path.with_extension(format!("pid.{}", std::process::id()));
        std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
        std::fs::rename(&tmp, path)?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.0)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Whether this process serves: set once the proxy's sockets, bound by this process (or
/// handed over to it) with a built snapshot, are given to the accept loops, and cleared when it
/// starts to drain. `/readyz` answers from it; systemd (`Type=notify`) is told at once.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicU8>);

const STARTING: u8 = 0;
const SERVING: u8 = 1;
const DRAINING: u8 = 2;

impl Readiness {
    pub fn serving(&self) {
        if self.0.swap(SERVING, Ordering::AcqRel) == SERVING {
            return;
        }
        if let Some(socket) = std::env::var_os("NOTIFY_SOCKET") {
            let msg = format!("MAINPID={}\nREADY=1\n", std::process::id());
            if let Err(e) = sd_notify(&socket, &msg) {
                log::warn!("cannot notify systemd: {e}");
            }
        }
    }

    pub fn draining(&self) {
        self.0.store(DRAINING, Ordering::Release);
    }

    /// `None` while serving, else why not: `starting` or `draining`.
    pub fn not_ready(&self) -> Option<&'static str> {
        match self.0.load(Ordering::Acquire) {
            SERVING => None,
            STARTING => Some("starting"),
            _ => Some("draining"),
        }
    }
}

fn sd_notify(socket: &std::ffi::OsStr, msg: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
    let bytes = socket.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => UnixAddr::from_abstract_name(name)?,
        None => UnixAddr::from_pathname(Path::new(socket))?,
    };
    UnixDatagram::unbound()?.send_to_addr(msg.as_bytes(), &addr)?;
    Ok(())
}

/// Runs `handle` on its own thread each time `kind` arrives, for the life of the process.
/// Registering the handler also replaces the signal's default action (for SIGHUP: exit).
pub fn on_signal<F, Fut>(kind: tokio::signal::unix::SignalKind, name: &'static str, handle: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let spawned = std::thread::Builder::new()
        .name(format!("flowgate-{name}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return log::error!("{name}: cannot start: {e}"),
            };
            rt.block_on(async move {
                let mut signals = match tokio::signal::unix::signal(kind) {
                    Ok(s) => s,
                    Err(e) => return log::error!("{name}: cannot watch the signal: {e}"),
                };
                while signals.recv().await.is_some() {
                    handle().await;
                }
            });
        });
    if let Err(e) = spawned {
        log::error!("{name}: cannot start: {e}");
    }
}

/// On SIGUSR2: start `flowgate run --upgrade` from the binary now on disk, then hand it the
/// sockets (SIGQUIT to ourselves). If the successor dies before taking over, we keep serving.
pub fn upgrade_on_sigusr2(config: PathBuf) {
    on_signal(
        tokio::signal::unix::SignalKind::user_defined2(),
        "upgrade",
        move || {
            let config = config.clone();
            async move {
                if let Err(e) = start_successor(&config).await {
                    log::error!("upgrade: {e}; this process keeps serving");
                }
            }
        },
    );
}

async fn start_successor(config: &Path) -> std::io::Result<()> {
    let exe = std::env::current_exe()?;
    // A replaced binary shows as "/path (deleted)"; run the file now at that path.
    let exe = PathBuf::from(exe.to_string_lossy().trim_end_matches(" (deleted)"));
    let mut child = std::process::Command::new(&exe)
        .args(["run", "--upgrade", "-c"])
        .arg(config)
        .spawn()?;
    log::info!("upgrade: started {} (pid {})", exe.display(), child.id());
    // Give it a moment to open the hand-over socket; pingora retries for a few seconds anyway.
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(status) = child.try_wait()? {
        return Err(std::io::Error::other(format!(
            "successor exited at once: {status}"
        )));
    }
    // SAFETY: raising a signal at our own process has no memory-safety preconditions.
    let rc = unsafe { libc::kill(libc::getpid(), libc::SIGQUIT) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Reap it in the background so it never lingers as a zombie of ours.
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// Requests being served and visitor connections open. Each request holds one `InFlight`
/// from start to its click event, each connection one `Open` (a tunnel too, until it ends,
/// and one `Tunnel` besides). Once closed, requests still arriving on kept-alive connections
/// are turned away unanswered.
#[derive(Clone, Default)]
pub struct InFlightCounter(Arc<Counts>);

#[derive(Default)]
pub struct Counts {
    requests: AtomicUsize,
    connections: AtomicUsize,
    /// The most connections open at once since `reset_peak`.
    peak: AtomicUsize,
    tunnels: AtomicUsize,
    closed: AtomicBool,
    tunnels_closing: AtomicBool,
    close_tunnels: tokio::sync::Notify,
}

pub struct InFlight(Arc<Counts>);

pub struct Open(Arc<Counts>);

/// A connection that became a tunnel (a WebSocket, say): it has no request left to end it, so
/// the drain closes it once nothing else is left to wait for.
pub struct Tunnel(Arc<Counts>);

impl InFlightCounter {
    pub fn enter(&self) -> InFlight {
        self.0.requests.fetch_add(1, Ordering::AcqRel);
        InFlight(self.0.clone())
    }

    pub fn connection(&self) -> Open {
        let open = self.0.connections.fetch_add(1, Ordering::AcqRel) + 1;
        // A plain load in the common case: only a new high writes.
        if open > self.0.peak.load(Ordering::Relaxed) {
            self.0.peak.fetch_max(open, Ordering::Relaxed);
        }
        Open(self.0.clone())
    }

    /// The most connections open at once since the last `reset_peak`.
    pub fn peak(&self) -> usize {
        self.0.peak.load(Ordering::Relaxed)
    }

    pub fn reset_peak(&self, now: usize) {
        self.0.peak.store(now, Ordering::Relaxed);
    }

    pub fn count(&self) -> usize {
        self.0.requests.load(Ordering::Acquire)
    }

    pub fn connections(&self) -> usize {
        self.0.connections.load(Ordering::Acquire)
    }

    pub fn tunnel(&self) -> Tunnel {
        self.0.tunnels.fetch_add(1, Ordering::AcqRel);
        Tunnel(self.0.clone())
    }

    pub fn tunnels(&self) -> usize {
        self.0.tunnels.load(Ordering::Acquire)
    }

    /// Returns once tunnels are to be closed (at once if they already are).
    pub async fn tunnels_closing(&self) {
        let notified = self.0.close_tunnels.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a close between the two is not missed.
        notified.as_mut().enable();
        if self.0.tunnels_closing.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }

    pub fn close_tunnels(&self) {
        self.0.tunnels_closing.store(true, Ordering::Release);
        self.0.close_tunnels.notify_waiters();
    }

    pub fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.0.tunnels.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Pingora's grace period after SIGTERM or an upgrade is a fixed sleep, and the runtime
/// shutdown after it cancels whatever still runs. So the grace period is our whole drain
/// budget, and this ends it early: once the listeners are closed, every visitor connection
/// has closed (each after its next answer, or after a second of silence; tunnels once only
/// they are left) and no request is in flight, `finish` runs (writing out click events) and
/// the process exits.
pub fn exit_when_drained(
    mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    in_flight: InFlightCounter,
    ready: Readiness,
    finish: impl FnOnce() + Send + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name("flowgate-drain".into())
        .spawn(move || {
            loop {
                match phases.blocking_recv() {
                    Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                    Ok(
                        ExecutionPhase::GracefulTerminate
                        | ExecutionPhase::GracefulUpgradeTransferringFds
                        | ExecutionPhase::ShutdownStarted,
                    ) => ready.draining(),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
            let until = |done: &dyn Fn() -> bool| {
                while !done() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            };
            let idle = || until(&|| in_flight.count() == 0 && in_flight.connections() == 0);
            // A tunnel would hold the process for as long as its visitor stays; it gets the
            // time the requests take to drain, then is closed (a WebSocket client reconnects,
            // to the successor after an upgrade).
            until(&|| in_flight.count() == 0 && in_flight.connections() <= in_flight.tunnels());
            in_flight.close_tunnels();
            idle();
            // A kept-alive connection may still bring a request; from now on it is closed
            // unanswered (clients retry such a request, as on any keep-alive race), and the
            // ones that slipped in before are waited for, so every answer has its event.
            in_flight.close();
            idle();
            log::info!("drained: no connection open, no request in flight");
            finish();
            std::process::exit(0);
        });
    if let Err(e) = spawned {
        log::warn!("cannot start drain watcher ({e}); shutdown waits the full grace period");
    }
}
