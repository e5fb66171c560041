//! A TCP relay on a loopback port that passes every connection on to a target and keeps the
//! first bytes each client sent: what a test needs to see the exact ClientHello flowgate got.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// How much of each connection's client bytes is kept.
const KEEP: usize = 64 * 1024;

/// What one connection's client has sent.
type Kept = Arc<Mutex<Vec<u8>>>;

pub struct Relay {
    pub addr: SocketAddr,
    /// Per connection, in the order they were accepted: the first bytes the client sent.
    sent: Arc<Mutex<Vec<Kept>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().unwrap();
        let sent: Arc<Mutex<Vec<Kept>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (all, stopped) = (sent.clone(), stop.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let kept: Kept = Arc::default();
                all.lock().unwrap().push(kept.clone());
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || pipe(client, server, Some(kept)));
                thread::spawn(move || pipe(s2, c2, None));
            }
        });
        Relay { addr, sent, stop }
    }

    /// What the client of connection `n` (from 0) has sent so far.
    pub fn sent(&self, n: usize) -> Option<Vec<u8>> {
        let all = self.sent.lock().unwrap();
        all.get(n).map(|k| k.lock().unwrap().clone())
    }

    pub fn connections(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, keep: Option<Kept>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(k) = &keep {
            let mut k = k.lock().unwrap();
            let room = KEEP.saturating_sub(k.len()).min(n);
            k.extend_from_slice(&buf[..room]);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
