//! A real postback receiver on loopback: an HTTP/1.1 server that keeps every request it
//! gets (method, target, headers, body) and answers each with the status the test sets.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use super::request::{read_request, Received};

pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
    /// The status every request is answered with (200 unless set).
    pub status: Arc<AtomicU16>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Self::start_on(0)
    }

    /// On `port` (0: any): a source that was down comes up where flowgate expects it.
    pub fn start_on(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the receiver's port");
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let (g, s) = (got.clone(), status.clone());
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (g, s) = (g.clone(), s.clone());
                thread::spawn(move || serve(conn, &g, &s));
            }
        });
        Receiver { addr, got, status }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, got: &Mutex<Vec<Received>>, status: &AtomicU16) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    while let Some(request) = read_request(&mut reader) {
        let code = status.load(Ordering::SeqCst);
        got.lock().unwrap().push(request);
        let answer = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\n\r\nok");
        if conn.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
