//! Which connections are served: at most `limits.max_connections` at once per listener, and
//! `limits.max_connections_per_ip` per TCP peer, unless that peer is a trusted proxy (its
//! visitors are limited per request, by the `rate` condition). Over a limit a connection is
//! closed at once, before a byte of it is read.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::config::{Limits, Listen};
use crate::metrics::Metrics;

const SHARDS: usize = 16;

type PeerCounts = Mutex<HashMap<IpAddr, u32, foldhash::fast::RandomState>>;

pub struct Admission {
    listeners: Vec<(Listen, AtomicUsize)>,
    /// Atomics: a reload changes them (`set_limits`) for the connections that come next.
    per_listener: AtomicUsize,
    per_peer: AtomicU32,
    peers: Box<[PeerCounts]>,
    hasher: foldhash::fast::RandomState,
    metrics: Arc<Metrics>,
}

/// A served connection; gives its places back when dropped.
pub struct Admitted {
    admission: Arc<Admission>,
    listener: Option<usize>,
    peer: Option<IpAddr>,
    /// Counted in `flowgate_connections_open` (a refused one never was).
    open: bool,
}

impl Admission {
    /// `listeners`: every listener, plain and TLS, at the address it is bound to.
    pub fn new(listeners: Vec<Listen>, limits: &Limits, metrics: Arc<Metrics>) -> Admission {
        Admission {
            listeners: (listeners.into_iter())
                .map(|l| (l, AtomicUsize::new(0)))
                .collect(),
            per_listener: AtomicUsize::new(limits.max_connections),
            per_peer: AtomicU32::new(limits.max_connections_per_ip),
            peers: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            metrics,
        }
    }

    /// The limits of a reloaded config; connections already served keep their places.
    pub fn set_limits(&self, limits: &Limits) {
        self.per_listener.store(limits.max_connections, Relaxed);
        self.per_peer.store(limits.max_connections_per_ip, Relaxed);
    }

    fn shard(&self, ip: IpAddr) -> &PeerCounts {
        &self.peers[(self.hasher.hash_one(ip) as usize) % SHARDS]
    }

    /// A place for a connection from `peer` that arrived at `local`, or why there is none.
    pub fn admit(
        self: &Arc<Self>,
        local: Option<SocketAddr>,
        peer: IpAddr,
        trusted: bool,
    ) -> Result<Admitted, &'static str> {
        let listener = local.and_then(|l| self.listeners.iter().position(|(x, _)| x.accepted(l)));
        let mut admitted = Admitted {
            admission: self.clone(),
            listener: None,
            peer: None,
            open: false,
        };
        if let Some(i) = listener {
            if self.listeners[i].1.fetch_add(1, Relaxed) >= self.per_listener.load(Relaxed) {
                self.listeners[i].1.fetch_sub(1, Relaxed);
                return Err(self.refuse("listener"));
            }
            admitted.listener = Some(i);
        }
        if !trusted {
            let mut counts = self.shard(peer).lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(peer).or_insert(0);
            if *n >= self.per_peer.load(Relaxed) {
                return Err(self.refuse("peer"));
            }
            *n += 1;
            admitted.peer = Some(peer);
        }
        self.metrics.connections_open.inc();
        admitted.open = true;
        Ok(admitted)
    }

    fn refuse(&self, why: &'static str) -> &'static str {
        self.metrics
            .connections_refused
            .with_label_values(&[why])
            .inc();
        why
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let a = &self.admission;
        if let Some(i) = self.listener {
            a.listeners[i].1.fetch_sub(1, Relaxed);
        }
        if let Some(peer) = self.peer {
            let mut counts = a.shard(peer).lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = counts.get_mut(&peer) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&peer);
                }
            }
        }
        if self.open {
            a.metrics.connections_open.dec();
        }
    }
}
