//! The upstream leg: hyper client connections in a per-thread pool. A connection lives on the
//! thread that opened it, so taking one out and giving it back needs no lock, no task and no
//! cross-thread wakeup. A pooled connection is checked when taken out (hyper's connection task
//! notices a peer's close while idle) and retired after `MAX_IDLE`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::{Body, Progress};
use crate::rules::Upstream;

/// Below the keep-alive timeout of any common server (nginx: 75 s), so a pooled connection is
/// almost never closed by the peer just as a request goes out on it.
const MAX_IDLE: Duration = Duration::from_secs(15);
const MAX_IDLE_PER_PEER: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    Connect,
    ConnectTimeout,
    Tls,
    Timeout,
    Protocol,
}

impl UpstreamError {
    /// The `kind` label of `flowgate_upstream_errors_total`.
    pub fn kind(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::ConnectTimeout => "connect_timeout",
            UpstreamError::Tls => "tls",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Protocol => "protocol",
        }
    }

    /// What the visitor gets.
    pub fn status(self) -> u16 {
        match self {
            UpstreamError::ConnectTimeout | UpstreamError::Timeout => 504,
            _ => 502,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
struct Key {
    addr: SocketAddr,
    /// `Some(server name)` for TLS.
    tls: Option<Arc<str>>,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
    deadline: Deadline,
}

/// The read deadline of one upstream connection: one tokio timer entry for the connection's
/// life, moved later for each request (an atomic store while the entry is registered). A timer
/// made and torn down per request took the timer wheel's lock twice and cost about 1k
/// instructions a request.
type Deadline = Pin<Box<tokio::time::Sleep>>;

fn deadline() -> Deadline {
    Box::pin(tokio::time::sleep_until(
        tokio::time::Instant::now() + MAX_IDLE,
    ))
}

thread_local! {
    static POOL: RefCell<Vec<(Key, Vec<Idle>)>> = const { RefCell::new(Vec::new()) };
}

fn take_idle(key: &Key) -> Option<(SendRequest<Body>, Duration, Deadline)> {
    POOL.with_borrow_mut(|pool| {
        let (_, idle) = pool.iter_mut().find(|(k, _)| k == key)?;
        while let Some(i) = idle.pop() {
            let age = i.since.elapsed();
            if !i.sender.is_closed() && age < MAX_IDLE {
                return Some((i.sender, age, i.deadline));
            }
        }
        None
    })
}

/// A pooled connection that is still open and ready, and how long it idled. Its task may not
/// have noticed yet that the last response was read to the end, so it gets one turn of the
/// scheduler to ask for the next request; one that is still busy is dropped, never waited on.
async fn take(key: &Key) -> Option<(SendRequest<Body>, Duration, Deadline)> {
    while let Some((mut sender, age, deadline)) = take_idle(key) {
        for turn in 0..2 {
            let ready = std::future::poll_fn(|cx| std::task::Poll::Ready(sender.poll_ready(cx)));
            match ready.await {
                std::task::Poll::Ready(Ok(())) => return Some((sender, age, deadline)),
                std::task::Poll::Ready(Err(_)) => break,
                std::task::Poll::Pending if turn == 0 => tokio::task::yield_now().await,
                std::task::Poll::Pending => {}
            }
        }
    }
    None
}

fn copy_head(req: &Request<Body>) -> Request<Body> {
    let mut copy = Request::new(Body::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

/// A connection in use; `release` gives it back once its response has been read to the end.
pub struct Pooled {
    key: Key,
    sender: SendRequest<Body>,
    deadline: Deadline,
}

impl Pooled {
    pub fn release(self) {
        if self.sender.is_closed() {
            return;
        }
        let idle = Idle {
            sender: self.sender,
            since: Instant::now(),
            deadline: self.deadline,
        };
        POOL.with_borrow_mut(|pool| match pool.iter_mut().find(|(k, _)| *k == self.key) {
            Some((_, list)) => {
                if list.len() >= MAX_IDLE_PER_PEER {
                    list.remove(0);
                }
                list.push(idle);
            }
            None => pool.push((self.key, vec![idle])),
        });
    }
}

/// The answer of one peer of `up`.
pub struct Answer {
    pub response: Response<Incoming>,
    pub conn: Pooled,
    pub peer: SocketAddr,
}

/// Sends `req` to a peer of `up`: on a pooled connection if one is idle, else on a new one
/// (each peer tried once while connecting fails). When a pooled connection fails before the
/// answer began, the request goes once more on a new connection, if hyper hands it back
/// unsent, or if `replay` allows sending it twice (idempotent, no body): then a copy of its
/// head is kept while it is on a pooled connection.
pub async fn send(
    up: &Upstream,
    mut req: Request<Body>,
    replay: bool,
) -> Result<Answer, (UpstreamError, SocketAddr)> {
    let upload = match req.body() {
        Body::Upload(_, sent) => Some(sent.clone()),
        _ => None,
    };
    let tls = up.tls.then(|| Arc::<str>::from(up.sni.as_str()));
    let mut peer = up.next_peer();
    let mut key = Key {
        addr: peer,
        tls: tls.clone(),
    };
    if let Some((mut sender, idled, mut deadline)) = take(&key).await {
        let copy = replay.then(|| copy_head(&req));
        log::trace!("upstream {peer}: pooled connection idle {idled:?}");
        match answer_within(
            up.read_timeout,
            upload.as_deref(),
            &mut deadline,
            sender.try_send_request(req),
        )
        .await
        {
            Ok(Ok(response)) => {
                let conn = Pooled {
                    key,
                    sender,
                    deadline,
                };
                return Ok(Answer {
                    response,
                    conn,
                    peer,
                });
            }
            Ok(Err(mut e)) => {
                log::debug!("upstream {peer}: pooled connection failed: {}", e.error());
                req = match e.take_message().or(copy) {
                    Some(again) => again,
                    None => return Err((UpstreamError::Protocol, peer)),
                };
            }
            Err(_) => return Err((UpstreamError::Timeout, peer)),
        }
    }
    let mut sender = None;
    for attempt in 0..up.peers.len() {
        if attempt > 0 {
            peer = up.next_peer();
            key.addr = peer;
        }
        // Boxed: a new connection's future (TCP, TLS, the handshake) is 3.7 KB, and inline it
        // would be moved, with every request's future, on every request.
        match Box::pin(connect(peer, tls.as_deref(), up.connect_timeout)).await {
            Ok(s) => {
                sender = Some(s);
                break;
            }
            Err(e) if attempt + 1 == up.peers.len() => return Err((e, peer)),
            Err(e) => log::debug!("upstream {peer}: {}; trying the next peer", e.kind()),
        }
    }
    let Some(mut sender) = sender else {
        return Err((UpstreamError::Connect, peer));
    };
    let mut deadline = deadline();
    let answer = answer_within(
        up.read_timeout,
        upload.as_deref(),
        &mut deadline,
        sender.send_request(req),
    );
    match answer.await {
        Ok(Ok(response)) => Ok(Answer {
            response,
            conn: Pooled {
                key,
                sender,
                deadline,
            },
            peer,
        }),
        Ok(Err(e)) => {
            log::debug!("upstream {peer}: {e}");
            Err((UpstreamError::Protocol, peer))
        }
        Err(_) => Err((UpstreamError::Timeout, peer)),
    }
}

/// The upstream's answer, unless `limit` passes in which the upstream had all the upload so
/// far and neither answered nor took more: `read_timeout` is how long the upstream may keep
/// quiet, and a visitor's slow upload is not the upstream's silence.
async fn answer_within<F: std::future::Future>(
    limit: Duration,
    upload: Option<&Progress>,
    deadline: &mut Deadline,
    fut: F,
) -> Result<F::Output, ()> {
    use std::future::Future as _;
    use std::task::Poll;
    tokio::pin!(fut);
    let frames = |u: &Progress| u.frames.load(Relaxed);
    let mut seen = upload.map(frames);
    deadline.as_mut().reset(tokio::time::Instant::now() + limit);
    std::future::poll_fn(|cx| loop {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let now = upload.map(frames);
        let on_visitor = upload.is_some_and(|u| u.on_visitor.load(Relaxed));
        if now == seen && !on_visitor {
            return Poll::Ready(Err(()));
        }
        seen = now;
        deadline.as_mut().reset(tokio::time::Instant::now() + limit);
    })
    .await
}

async fn connect(
    addr: SocketAddr,
    tls: Option<&str>,
    limit: Duration,
) -> Result<SendRequest<Body>, UpstreamError> {
    let tcp = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            log::debug!("upstream {addr}: connect: {e}");
            return Err(UpstreamError::Connect);
        }
        Err(_) => return Err(UpstreamError::ConnectTimeout),
    };
    let _ = tcp.set_nodelay(true);
    let Some(name) = tls else {
        return handshake(TokioIo::new(tcp)).await;
    };
    let server_name =
        pingora::tls::ServerName::try_from(name.to_string()).map_err(|_| UpstreamError::Tls)?;
    let connector = tls_connector().ok_or(UpstreamError::Tls)?;
    match tokio::time::timeout(limit, connector.connect(server_name, tcp)).await {
        Ok(Ok(s)) => handshake(TokioIo::new(s)).await,
        Ok(Err(e)) => {
            log::debug!("upstream {addr}: tls: {e}");
            Err(UpstreamError::Tls)
        }
        Err(_) => Err(UpstreamError::ConnectTimeout),
    }
}

async fn handshake<IO>(io: IO) -> Result<SendRequest<Body>, UpstreamError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|_| UpstreamError::Protocol)?;
    // One task per upstream connection (not per request): it reads while the connection idles,
    // so a peer's close is seen before the connection is taken out again.
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            log::debug!("upstream connection: {e}");
        }
    });
    Ok(sender)
}

/// Verifies upstream certificates against the system's roots; built on first use.
fn tls_connector() -> Option<&'static pingora::tls::TlsConnector> {
    static CONNECTOR: OnceLock<Option<pingora::tls::TlsConnector>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            use pingora::tls::{ClientConfig, RootCertStore};
            pingora::tls::install_default_crypto_provider();
            let mut roots = RootCertStore::empty();
            match pingora::tls::load_native_certs() {
                Ok(certs) => {
                    let (_, bad) = roots.add_parsable_certificates(certs);
                    if bad > 0 {
                        log::debug!("upstream tls: {bad} system certificates unreadable");
                    }
                }
                Err(e) => log::warn!("upstream tls: cannot load system certificates: {e}"),
            }
            let mut config = ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(pingora::tls::TlsConnector::from(Arc::new(config)))
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::UpstreamError::{self, *};

    #[test]
    fn a_visitor_gets_504_when_the_upstream_was_too_slow_and_502_when_it_failed() {
        let all = [Connect, ConnectTimeout, Tls, Timeout, Protocol];
        // Stops compiling when a kind is added without a row below.
        for e in all {
            match e {
                Connect | ConnectTimeout | Tls | Timeout | Protocol => {}
            }
        }
        let seen: Vec<(UpstreamError, u16, &str)> =
            all.iter().map(|e| (*e, e.status(), e.kind())).collect();
        assert_eq!(
            seen,
            [
                (Connect, 502, "connect"),
                (ConnectTimeout, 504, "connect_timeout"),
                (Tls, 502, "tls"),
                (Timeout, 504, "timeout"),
                (Protocol, 502, "protocol"),
            ]
        );
        // Each kind's series is made at 0 when a snapshot loads.
        let kinds: Vec<&str> = all.iter().map(|e| e.kind()).collect();
        assert_eq!(kinds, crate::metrics::UPSTREAM_ERROR_KINDS);
    }
}
