//! What visitor connections meet: `listen:` and `tls:` entries, and `limits:` — sizes, counts
//! and deadlines, with the defaults nginx operators know.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ByteSize, Timeout};
use crate::problem::{Problems, Span};
use crate::yaml::At;

/// A plain HTTP listener: `"0.0.0.0:8080"`, or `{ addr, proxy_protocol }` for one behind an L4
/// balancer that opens each connection with a PROXY protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    pub proxy_protocol: bool,
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "an address like \"0.0.0.0:8080\" or { addr: \"0.0.0.0:8080\", proxy_protocol: true }"
)]
enum ListenSpec {
    Addr(SocketAddr),
    Full {
        addr: SocketAddr,
        #[serde(default)]
        proxy_protocol: bool,
    },
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match ListenSpec::deserialize(d)? {
            ListenSpec::Addr(addr) => Listen {
                addr,
                proxy_protocol: false,
            },
            ListenSpec::Full {
                addr,
                proxy_protocol,
            } => Listen {
                addr,
                proxy_protocol,
            },
        })
    }
}

/// A TLS listener: `{ listen, certs: [{ cert, key }, ...] }` (PEM files), or one pair as
/// `{ listen, cert, key }`, which validation turns into a one-element `certs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListener {
    pub listen: At<SocketAddr>,
    #[serde(default)]
    pub certs: Vec<CertPair>,
    #[serde(default)]
    cert: Option<At<PathBuf>>,
    #[serde(default)]
    key: Option<At<PathBuf>>,
}

/// A certificate (chain) and its private key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertPair {
    pub cert: At<PathBuf>,
    pub key: At<PathBuf>,
    /// How problems name it: `tls[0]` in the one-pair form, else `tls[0].certs[1]`.
    #[serde(skip)]
    field: String,
}

impl TlsListener {
    pub fn paths_mut(&mut self) -> impl Iterator<Item = &mut PathBuf> {
        let single = [&mut self.cert, &mut self.key].into_iter().flatten();
        let listed = (self.certs.iter_mut()).flat_map(|p| [&mut p.cert, &mut p.key]);
        single.chain(listed).map(|p| &mut p.value)
    }

    /// Puts the one-pair form into `certs` and loads every pair, as serving would: a file
    /// that cannot be read, a key that does not match, a certificate without names.
    pub fn validate(&mut self, file: &Path, i: usize, problems: &mut Problems) {
        let at = format!("tls[{i}]");
        match (self.cert.take(), self.key.take()) {
            (Some(_), Some(_)) if !self.certs.is_empty() => {
                let msg = "give either cert and key or certs, not both";
                problems.push(file, self.listen.span, format!("{at}.certs"), msg);
            }
            (Some(cert), Some(key)) => self.certs.push(CertPair {
                cert,
                key,
                field: at.clone(),
            }),
            (Some(cert), None) => problems.push(
                file,
                cert.span,
                format!("{at}.key"),
                "missing: a cert needs its key",
            ),
            (None, Some(key)) => problems.push(
                file,
                key.span,
                format!("{at}.cert"),
                "missing: a key needs its cert",
            ),
            (None, None) if self.certs.is_empty() => {
                let msg = "no certificate: give certs: [{ cert, key }]";
                problems.push(file, self.listen.span, format!("{at}.certs"), msg);
            }
            (None, None) => {}
        }
        for (j, p) in self.certs.iter_mut().enumerate() {
            if p.field.is_empty() {
                p.field = format!("{at}.certs[{j}]");
            }
        }
        for pair in self.pairs(file) {
            if let Err(p) = pair.load() {
                problems.push(&p.file, p.span, p.field, p.message);
            }
        }
    }

    /// The pairs as the TLS layer loads them; `file` is the config file.
    pub fn pairs(&self, file: &Path) -> Vec<crate::tls::Pair> {
        (self.certs.iter())
            .map(|p| crate::tls::Pair {
                cert: p.cert.value.clone(),
                key: p.key.value.clone(),
                config: file.to_path_buf(),
                field: p.field.clone(),
                cert_span: p.cert.span,
                key_span: p.key.span,
            })
            .collect()
    }
}

impl Listen {
    /// Whether a connection that arrived at `local` came through this listener.
    pub fn accepted(&self, local: SocketAddr) -> bool {
        self.addr.port() == local.port()
            && (self.addr.ip().is_unspecified() || self.addr.ip() == local.ip().to_canonical())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// A request line plus headers larger than this gets 431 (hyper's own floor is 8 KiB).
    #[serde(default = "default_header_bytes")]
    pub max_header_bytes: ByteSize,
    /// nginx's `client_header_timeout`: a new connection's first request, and any request
    /// header once begun, must be complete within this.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: Timeout,
    /// nginx's `client_body_timeout`: how long a visitor's upload may stall.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: Timeout,
    /// nginx's `keepalive_timeout`: how long a connection may wait for its next request.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Timeout,
    /// How long an upgraded connection (a WebSocket) may go without a byte either way. Longer
    /// than `idle_timeout`: closing a live page's socket costs its visitor a reconnect, and
    /// many applications ping only every 30-60 s.
    #[serde(default = "default_tunnel_idle_timeout")]
    pub tunnel_idle_timeout: Timeout,
    /// nginx's `client_max_body_size`: a larger request body gets 413.
    #[serde(default = "default_body_bytes")]
    pub max_body_bytes: ByteSize,
    /// Connections served at once per listener; more are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections at once from one address (trusted proxies excepted).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: u32,
    /// nginx's `keepalive_requests`: the answer to the last one closes the connection.
    #[serde(default = "default_requests_per_connection")]
    pub requests_per_connection: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: default_header_bytes(),
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            tunnel_idle_timeout: default_tunnel_idle_timeout(),
            body_timeout: default_body_timeout(),
            requests_per_connection: default_requests_per_connection(),
            max_body_bytes: default_body_bytes(),
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
        }
    }
}

fn default_header_bytes() -> ByteSize {
    ByteSize(64 << 10)
}

fn default_max_connections() -> usize {
    16_384
}

fn default_max_connections_per_ip() -> u32 {
    256
}

fn default_body_bytes() -> ByteSize {
    ByteSize(1 << 20)
}

fn default_header_timeout() -> Timeout {
    Timeout(Duration::from_secs(10))
}

fn default_body_timeout() -> Timeout {
    Timeout(Duration::from_secs(60))
}

fn default_idle_timeout() -> Timeout {
    Timeout(Duration::from_secs(60))
}

fn default_tunnel_idle_timeout() -> Timeout {
    Timeout(Duration::from_secs(300))
}

fn default_requests_per_connection() -> u64 {
    1000
}

/// hyper refuses a read buffer below this.
const MIN_HEADER_BYTES: u64 = 8192;

impl Limits {
    pub fn validate(&self, file: &Path, problems: &mut Problems) {
        let mut bad = |field: &str, msg: String| {
            problems.push(file, Span::default(), format!("limits.{field}"), msg)
        };
        let bytes = self.max_header_bytes.0;
        if !(MIN_HEADER_BYTES..=16 << 20).contains(&bytes) {
            bad(
                "max_header_bytes",
                format!("{bytes} bytes: must be from 8KiB to 16MiB"),
            );
        }
        for (field, t) in [
            ("header_timeout", self.header_timeout),
            ("idle_timeout", self.idle_timeout),
            ("tunnel_idle_timeout", self.tunnel_idle_timeout),
            ("body_timeout", self.body_timeout),
        ] {
            if t.0 < Duration::from_secs(1) {
                bad(
                    field,
                    "must be at least 1s (deadlines are kept to the second)".into(),
                );
            }
        }
        if self.max_connections == 0 {
            bad("max_connections", "must be at least 1".into());
        }
        if self.max_connections_per_ip == 0 {
            bad("max_connections_per_ip", "must be at least 1".into());
        }
        if self.requests_per_connection == 0 {
            bad("requests_per_connection", "must be at least 1".into());
        }
    }

    /// The header buffer size hyper is given.
    pub fn header_bytes(&self) -> usize {
        usize::try_from(self.max_header_bytes.0).unwrap_or(usize::MAX)
    }
}
