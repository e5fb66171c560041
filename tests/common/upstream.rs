//! Real upstream servers on 127.0.0.1:0: one that echoes each request as JSON, and a raw
//! one that hands each connection to the test.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::request::read_request;
use super::wait::pace;

/// A real HTTP/1.1 server that answers every request with what it received, as JSON:
/// `{"server": NAME, "method", "target", "headers": {lowercase name: value}}`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn start(name: &'static str) -> Upstream {
        Self::start_with_delay(name, Duration::ZERO)
    }

    /// Each answer takes `delay`: a slow upstream.
    pub fn start_with_delay(name: &'static str, delay: Duration) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let h = h.clone();
                thread::spawn(move || serve(conn, name, delay, &h));
            }
        });
        Upstream { addr, hits }
    }
}

fn serve(conn: TcpStream, name: &str, delay: Duration, hits: &AtomicUsize) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    // Keep-alive: pingora pools upstream connections, so serve requests until EOF.
    while let Some(r) = read_request(&mut reader) {
        hits.fetch_add(1, Ordering::SeqCst);
        pace(delay);
        let body = serde_json::json!({
            "server": name, "method": r.method, "target": r.target, "headers": r.headers,
        })
        .to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// A raw upstream: `serve` gets each accepted connection on its own thread.
pub struct RawUp {
    pub addr: SocketAddr,
    pub conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl RawUp {
    pub fn start(serve: impl Fn(BufReader<TcpStream>) + Send + Sync + 'static) -> RawUp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (conns, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (counted, stopped, serve) = (conns.clone(), stop.clone(), Arc::new(serve));
        thread::spawn(move || {
            for tcp in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(tcp) = tcp else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                let serve = serve.clone();
                thread::spawn(move || serve(BufReader::new(tcp)));
            }
        });
        RawUp { addr, conns, stop }
    }
}

impl Drop for RawUp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the stop.
        let _ = TcpStream::connect(self.addr);
    }
}
