//! A connection to a TLS listener: the handshake (its ClientHello read first for the JA4
//! fingerprint), on the thread that serves the connection and within the header deadline, then HTTP/2 or HTTP/1.1 as ALPN chose. HTTP/2 is hyper's server
//! with the same `handle` per request as HTTP/1.1, the same watchdog and the same limits: the
//! header block's size, one connection's requests (then GOAWAY), its streams at once, and
//! GOAWAY when the process drains.

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue, COOKIE};
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::{self, ConnState, Counted};
use super::replay::Replay;
use super::Gateway;
use crate::identity::Ja4;
use crate::snapshot::Settings;

/// Streams one HTTP/2 connection may have open at once (nginx's `http2_max_concurrent_streams`
/// is 128; the HTTP/2 RFC asks for no fewer than 100).
const MAX_STREAMS: u32 = 100;

/// Serves a connection that arrived at a TLS listener.
pub(super) async fn serve_tls(
    gw: Arc<Gateway>,
    settings: Arc<Settings>,
    stream: Stream,
    peer: IpAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: &ShutdownWatch,
) {
    match conn::localize(stream) {
        Ok(tcp) => handshake(gw, settings, tcp, peer, acceptor, shutdown).await,
        Err(stream) => handshake(gw, settings, stream, peer, acceptor, shutdown).await,
    }
}

async fn handshake<S>(
    gw: Arc<Gateway>,
    settings: Arc<Settings>,
    io: S,
    peer: IpAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: &ShutdownWatch,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limit = settings.limits.header_timeout.0;
    // The ClientHello is read first, for its fingerprint, within the same deadline.
    let mut io = io;
    let handshake = async {
        let (hello, ja4) = super::client_hello::read(&mut io).await?;
        let tls = acceptor.accept(Replay::new(hello.into(), io)).await?;
        Ok::<_, std::io::Error>((tls, ja4))
    };
    let (tls, ja4) = match tokio::time::timeout(limit, handshake).await {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(e)) => return log::debug!("TLS handshake from {peer}: {e}; closed"),
        Err(_) => return log::debug!("TLS handshake from {peer}: not done in time; closed"),
    };
    if tls.get_ref().1.alpn_protocol() == Some(crate::tls::ALPN_H2) {
        serve_h2(gw, settings, tls, peer, ja4, shutdown).await
    } else {
        let start = conn::Start {
            ja4,
            tls: true,
            ..conn::Start::default()
        };
        conn::serve_io(gw, settings, tls, peer, start, shutdown).await
    }
}

async fn serve_h2<S>(
    gw: Arc<Gateway>,
    settings: Arc<Settings>,
    io: S,
    peer: IpAddr,
    ja4: Option<Ja4>,
    shutdown: &ShutdownWatch,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let trusted = settings.trusted_proxies.contains(peer);
    let state = Arc::new(ConnState::new(trusted, settings, ja4, true));
    let io = TokioIo::new(Counted::new(io, state.clone()));
    let limits = state.settings.limits.clone();
    // The request that reaches `requests_per_connection` asks for the connection to end.
    let last = Arc::new(tokio::sync::Notify::new());
    let (svc_state, svc_last) = (state.clone(), last.clone());
    let svc = service_fn(move |mut req: Request<Incoming>| {
        let (gw, state) = (gw.clone(), svc_state.clone());
        if state.requests() + 1 >= state.settings.limits.requests_per_connection {
            svc_last.notify_one();
        }
        merge_cookies(req.headers_mut());
        Box::pin(super::handle::handle(gw, state, peer, req))
    });
    let conn = http2::Builder::new(TokioExecutor::new())
        .max_header_list_size(u32::try_from(limits.header_bytes()).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_STREAMS)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    let mut shutdown = shutdown.clone();
    let mut closing = false;
    if *shutdown.borrow() {
        state.set_draining();
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            done = &mut conn => {
                if let Err(e) = done {
                    log::debug!("HTTP/2 connection from a visitor ended: {e}");
                }
                return;
            }
            changed = shutdown.changed(), if !state.draining() => {
                if changed.is_err() || *shutdown.borrow() {
                    state.set_draining();
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = last.notified(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = conn::watchdog(&state, &limits) => {
                log::debug!("HTTP/2 connection closed by its deadline");
                return;
            }
        }
    }
}

/// HTTP/2 may split `Cookie` into one field per cookie (RFC 9113 §8.2.3); the rules and the
/// HTTP/1.1 upstream see them as one header, joined with "; " as that section asks.
fn merge_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return;
    }
    let joined = (headers.get_all(COOKIE).iter())
        .map(HeaderValue::as_bytes)
        .collect::<Vec<_>>()
        .join(&b"; "[..]);
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_cookies_reach_the_rules_as_one_header() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1"));
        h.append(COOKIE, HeaderValue::from_static("b=2"));
        merge_cookies(&mut h);
        let all: Vec<_> = h.get_all(COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=2"]);

        let mut one = HeaderMap::new();
        one.insert(COOKIE, HeaderValue::from_static("a=1"));
        merge_cookies(&mut one);
        assert_eq!(one.get_all(COOKIE).iter().count(), 1);
    }
}
