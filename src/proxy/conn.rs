//! One visitor connection: hyper's HTTP/1 server over the stream pingora accepted (a TLS
//! listener's connections go to `h2` for their handshake first), raced against flowgate's
//! own deadlines and the shutdown watch. pingora spawns each connection on
//! one of its threads but leaves the socket registered with the accepting thread's poller,
//! which would make every readiness event a cross-thread wakeup; a plain TCP connection is
//! therefore registered anew with the thread that serves it. hyper has no deadline of its own
//! without a timer per request, so a once-a-second watchdog per connection reads what the
//! connection did (bytes read, requests started and finished) and closes it when it idles too
//! long, sends a header too slowly, or stays silent once the process drains.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::replay::Replay;
use super::Gateway;
use crate::identity::Ja4;
use crate::snapshot::Settings;

pub(super) const TICK: Duration = Duration::from_secs(1);

/// What a connection has done, written by the request path and read by the watchdog.
pub struct ConnState {
    /// Bytes read from and written to the visitor.
    reads: AtomicU64,
    writes: AtomicU64,
    started: AtomicU64,
    finished: AtomicU64,
    /// While an upstream's body streams: how many seconds it may go without moving a byte
    /// either way (the upstream's `read_timeout`); 0 for no limit.
    stall_secs: AtomicU64,
    draining: AtomicBool,
    /// The peer is a trusted proxy whose forwarding headers are believed; decided once per
    /// connection, not per request.
    pub peer_trusted: bool,
    /// The settings the connection was accepted with; a reload changes the next one's.
    pub settings: Arc<Settings>,
    /// The JA4 fingerprint of the TLS client, on a TLS listener.
    pub ja4: Option<Ja4>,
    /// The visitor speaks TLS to flowgate: the cookies it is given are `Secure`.
    pub tls: bool,
    /// Set by an answer that switches protocols: what the connection becomes once hyper
    /// lets go of it.
    tunnel: std::sync::Mutex<Option<super::tunnel::Pending>>,
}

impl ConnState {
    pub(super) fn new(
        peer_trusted: bool,
        settings: Arc<Settings>,
        ja4: Option<Ja4>,
        tls: bool,
    ) -> ConnState {
        ConnState {
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            stall_secs: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            peer_trusted,
            settings,
            ja4,
            tls,
            tunnel: std::sync::Mutex::new(None),
        }
    }

    /// Counts the request in; returns how many this connection has had.
    pub fn request_started(&self) -> u64 {
        self.started.fetch_add(1, Relaxed) + 1
    }

    pub fn request_finished(&self) {
        self.stall_secs.store(0, Relaxed);
        self.finished.fetch_add(1, Relaxed);
    }

    pub fn stall_limit(&self, limit: Duration) {
        self.stall_secs
            .store(limit.as_millis().div_ceil(1000).max(1) as u64, Relaxed);
    }

    pub(super) fn becomes_tunnel(&self, pending: super::tunnel::Pending) {
        *self.tunnel.lock().unwrap_or_else(|e| e.into_inner()) = Some(pending);
    }

    fn take_tunnel(&self) -> Option<super::tunnel::Pending> {
        self.tunnel.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Bytes moved, both ways together.
    pub(super) fn moved(&self) -> u64 {
        self.reads.load(Relaxed) + self.writes.load(Relaxed)
    }

    /// Bytes read from the visitor, and written to it.
    pub(super) fn bytes(&self) -> (u64, u64) {
        (self.reads.load(Relaxed), self.writes.load(Relaxed))
    }

    /// Once the process drains, each answer closes its connection.
    pub fn draining(&self) -> bool {
        self.draining.load(Relaxed)
    }

    pub(super) fn set_draining(&self) {
        self.draining.store(true, Relaxed);
    }

    /// How many requests the connection has had so far.
    pub(super) fn requests(&self) -> u64 {
        self.started.load(Relaxed)
    }
}

/// Serves the connection until the visitor closes it, hyper ends it, or a deadline does.
pub async fn serve(gw: Arc<Gateway>, stream: Stream, shutdown: &ShutdownWatch) {
    let _open = gw.in_flight.connection();
    let peer = stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr().and_then(|a| a.as_inet().map(|a| a.ip())))
        .map(|ip| ip.to_canonical());
    let Some(peer) = peer else {
        log::debug!("connection without a peer address; closed");
        return;
    };
    let local = stream
        .get_socket_digest()
        .and_then(|d| d.local_addr().and_then(|a| a.as_inet().copied()));
    let settings = gw.live.settings();
    let trusted = settings.trusted_proxies.contains(peer);
    let _admitted = match gw.admission.admit(local, peer, trusted) {
        Ok(a) => a,
        Err(limit) => return log::debug!("connection over the {limit} limit; closed"),
    };
    if let Some(tls) = local.and_then(|local| gw.tls.acceptor(local)) {
        let tls = tls.clone();
        return super::h2::serve_tls(gw, settings, stream, peer, tls, shutdown).await;
    }
    let proxied = local.is_some_and(|local| gw.proxy_protocol.iter().any(|l| l.accepted(local)));
    match localize(stream) {
        Ok(mut tcp) if proxied => {
            if !trusted {
                log::debug!("PROXY protocol listener: connection from an untrusted peer closed");
                return;
            }
            let limit = settings.limits.header_timeout.0;
            match tokio::time::timeout(limit, proxy_header(&mut tcp)).await {
                Ok(Ok((Some(client), rest))) => {
                    let start = Start::after(rest, true);
                    serve_io(gw, settings, tcp, client, start, shutdown).await
                }
                // The balancer's own connection (UNKNOWN, LOCAL): it is the peer, and what its
                // requests say of other clients is not believed.
                Ok(Ok((None, rest))) => {
                    let start = Start::after(rest, false);
                    serve_io(gw, settings, tcp, peer, start, shutdown).await
                }
                Ok(Err(e)) => log::debug!("PROXY protocol: {e}; connection closed"),
                Err(_) => log::debug!("PROXY protocol: no header in time; connection closed"),
            }
        }
        Ok(tcp) => serve_io(gw, settings, tcp, peer, Start::default(), shutdown).await,
        Err(_) if proxied => log::debug!("PROXY protocol needs a plain TCP connection; closed"),
        Err(stream) => serve_io(gw, settings, stream, peer, Start::default(), shutdown).await,
    }
}

/// Reads the PROXY protocol header: the client it names (`None`: the balancer's own
/// connection), and the bytes read past it, which begin the first request.
async fn proxy_header(
    tcp: &mut tokio::net::TcpStream,
) -> Result<(Option<std::net::IpAddr>, Bytes), &'static str> {
    use super::proxy_protocol::{parse, Header, Parse, MAX_HEADER};
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; MAX_HEADER];
    let mut filled = 0;
    loop {
        let n = tcp
            .read(&mut buf[filled..])
            .await
            .map_err(|_| "read failed")?;
        if n == 0 {
            return Err("closed before the header");
        }
        filled += n;
        match parse(&buf[..filled]) {
            Parse::Done(h) => {
                let rest = Bytes::copy_from_slice(&buf[h.header_len()..filled]);
                let client = match h {
                    Header::Proxied { client, .. } => Some(client.ip().to_canonical()),
                    Header::Local { .. } => None,
                };
                return Ok((client, rest));
            }
            Parse::Incomplete if filled < MAX_HEADER => {}
            Parse::Incomplete => return Err("header too long"),
            Parse::Invalid(e) => return Err(e),
        }
    }
}

/// The same TCP connection, registered with this thread's poller; any other stream stays as
/// it is.
pub(super) fn localize(stream: Stream) -> Result<tokio::net::TcpStream, Stream> {
    use std::os::fd::FromRawFd;
    if !stream
        .as_any()
        .is::<pingora::protocols::l4::stream::Stream>()
    {
        return Err(stream);
    }
    // SAFETY: `id()` of an l4 stream is its open socket; the duplicate is a new descriptor
    // this function owns from here on.
    let fd = unsafe { libc::fcntl(stream.id(), libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(stream);
    }
    // SAFETY: `fd` was just created above and nothing else refers to it.
    let std = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    match tokio::net::TcpStream::from_std(std) {
        Ok(tcp) => Ok(tcp),
        Err(e) => {
            log::debug!("cannot move a connection to its thread: {e}");
            Err(stream)
        }
    }
}

/// What is known of a connection before its first request.
pub(super) struct Start {
    /// Bytes already read from the stream that belong to the first request.
    pub prefix: Bytes,
    /// False when the peer's forwarding headers count for nothing whoever it is.
    pub believe_forwarding: bool,
    pub ja4: Option<Ja4>,
    /// The stream is the plaintext of a TLS connection.
    pub tls: bool,
}

impl Default for Start {
    fn default() -> Start {
        Start::after(Bytes::new(), true)
    }
}

impl Start {
    fn after(prefix: Bytes, believe_forwarding: bool) -> Start {
        Start {
            prefix,
            believe_forwarding,
            ja4: None,
            tls: false,
        }
    }
}

pub(super) async fn serve_io<S>(
    gw: Arc<Gateway>,
    settings: Arc<Settings>,
    stream: S,
    peer: std::net::IpAddr,
    start: Start,
    shutdown: &ShutdownWatch,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let trusted = start.believe_forwarding && settings.trusted_proxies.contains(peer);
    let state = Arc::new(ConnState::new(trusted, settings, start.ja4, start.tls));
    let io = TokioIo::new(Counted::new(
        Replay::new(start.prefix, stream),
        state.clone(),
    ));
    let limits = &state.settings.limits;
    let svc_state = state.clone();
    let svc = service_fn(move |req| {
        let (gw, state) = (gw.clone(), svc_state.clone());
        // Not boxed: hyper keeps the request's future in a slot it boxed once per connection,
        // and a box of our own was a large allocation per request (callgrind: 950
        // instructions a request more).
        super::handle::handle(gw, state, peer, req)
    });
    let conn = http1::Builder::new()
        .max_buf_size(limits.header_bytes())
        .max_header_size(limits.header_bytes())
        // A visitor that half-closes after its request still gets the answer.
        .half_close(true)
        // One buffer per response: the head and a page's body go out in one plain write, which
        // measured 350 instructions per request cheaper than queueing them for writev.
        .writev(false)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    let mut shutdown = shutdown.clone();
    if *shutdown.borrow() {
        state.draining.store(true, Relaxed);
    }
    loop {
        tokio::select! {
            done = &mut conn => {
                if let Err(e) = done {
                    log::debug!("connection from a visitor ended: {e}");
                }
                break;
            }
            changed = shutdown.changed(), if !state.draining() => {
                if changed.is_err() || *shutdown.borrow() {
                    state.draining.store(true, Relaxed);
                }
            }
            () = watchdog(&state, limits) => {
                log::debug!("connection closed by its deadline");
                return;
            }
        }
    }
    // hyper dropped its part of an upgraded connection (buffers, service) on handing it over.
    if let Some(pending) = state.take_tunnel() {
        super::tunnel::run(pending, &state).await;
    }
}

/// Returns when the connection should be closed: silent past its deadline while no request
/// is being answered. Restarted (from zero) when the process starts draining.
pub(super) async fn watchdog(state: &ConnState, limits: &crate::config::Limits) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    let mut seen = (
        state.started.load(Relaxed),
        state.finished.load(Relaxed),
        state.reads.load(Relaxed),
    );
    let mut quiet = Duration::ZERO;
    // Since the first bytes of a request header arrived, if they have.
    let mut header = Duration::ZERO;
    let mut moved = state.writes.load(Relaxed);
    let mut stalled = 0;
    loop {
        interval.tick().await;
        let (started, finished, reads) = (
            state.started.load(Relaxed),
            state.finished.load(Relaxed),
            state.reads.load(Relaxed),
        );
        if started != finished {
            // Answering: only a streaming body that stopped moving ends it.
            let limit = state.stall_secs.load(Relaxed);
            let now = reads + state.writes.load(Relaxed);
            stalled = if now == moved { stalled + 1 } else { 0 };
            moved = now;
            if limit > 0 && stalled >= limit {
                return;
            }
            seen = (started, finished, reads);
            quiet = Duration::ZERO;
            header = Duration::ZERO;
            continue;
        }
        stalled = 0;
        if (started, finished) != (seen.0, seen.1) {
            // Answered since the last look: the clock starts again.
            seen = (started, finished, reads);
            quiet = Duration::ZERO;
            header = Duration::ZERO;
            continue;
        }
        quiet += TICK;
        if reads != seen.2 {
            header += TICK;
        }
        let (elapsed, limit) = if started == 0 {
            // From the connection's start: its first bytes may have come before the first
            // look, and `header` would only start at the next ones.
            (quiet, limits.header_timeout.0)
        } else if header > Duration::ZERO {
            (header, limits.header_timeout.0)
        } else if state.draining() {
            // Closed only after a second of silence: a request already on its way still
            // gets its answer (with `Connection: close`).
            (quiet, TICK)
        } else {
            (quiet, limits.idle_timeout.0)
        };
        if elapsed >= limit {
            return;
        }
    }
}

/// The accepted stream, counting the bytes it moves each way (for the watchdog and a
/// tunnel's `flowgate_bytes_total`).
pub(super) struct Counted<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S> Counted<S> {
    pub(super) fn new(inner: S, state: Arc<ConnState>) -> Counted<S> {
        Counted { inner, state }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.state.reads.fetch_add(n as u64, Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            if *n > 0 {
                self.state.writes.fetch_add(*n as u64, Relaxed);
            }
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &polled {
            if *n > 0 {
                self.state.writes.fetch_add(*n as u64, Relaxed);
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
