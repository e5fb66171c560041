//! TLS as flowgate terminates it: each listener's certificate and key pairs, chosen per
//! handshake by the name the client asks for (SNI), and swapped in while the process serves.
//! The pairs of a listener sit in an `ArcSwap`, so a handshake reads them without a lock and
//! a reload replaces them whole; a pair that no longer loads keeps its last good version.
//! Knows nothing of the config file: it is given paths and the place each was written.

mod load;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

pub use load::Loaded;

use crate::problem::{Problem, Problems, Span};

/// The protocols offered in ALPN, preferred first.
pub const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// One certificate and key pair as the operator named it.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The config file that names the pair, for problems found in it.
    pub config: PathBuf,
    /// How problems name the pair: `tls[0]`, `tls[0].certs[1]`.
    pub field: String,
    pub cert_span: Span,
    pub key_span: Span,
}

/// Which file of a pair a problem is in.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    Cert,
    Key,
}

impl Pair {
    pub fn load(&self) -> Result<Loaded, Problem> {
        load::load(self)
    }

    fn problem(&self, part: Part, message: String) -> Problem {
        let (name, span) = match part {
            Part::Cert => ("cert", self.cert_span),
            Part::Key => ("key", self.key_span),
        };
        Problem {
            file: self.config.clone(),
            span,
            field: format!("{}.{name}", self.field),
            message,
        }
    }
}

fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Which pair answers which name, built whole from the loaded pairs.
struct Table {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` under `example.com`: it answers for exactly one more label.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl Table {
    /// `loaded` is not empty. A name two pairs claim is answered by the one listed first.
    fn new(loaded: &[Loaded]) -> Option<Table> {
        let default = loaded.first()?.key.clone();
        let (mut exact, mut wildcard) = (HashMap::new(), HashMap::new());
        for l in loaded {
            for name in &l.names {
                let (map, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut wildcard, parent),
                    None => (&mut exact, name.as_str()),
                };
                map.entry(key.to_string()).or_insert_with(|| l.key.clone());
            }
        }
        Some(Table {
            default,
            exact,
            wildcard,
        })
    }

    /// `name` is lowercase (rustls lowers what the client sent).
    fn pick(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = name else {
            return &self.default;
        };
        if let Some(k) = self.exact.get(name) {
            return k;
        }
        let parent = name.split_once('.').map(|(_, p)| p);
        parent
            .and_then(|p| self.wildcard.get(p))
            .unwrap_or(&self.default)
    }
}

/// The certificates of one TLS listener: the handshake's resolver, and their reload.
pub struct Certs {
    /// `tls[0]`, for the log.
    name: String,
    pairs: Vec<Pair>,
    /// The last good version of each pair, in `pairs` order.
    loaded: Mutex<Vec<Loaded>>,
    table: ArcSwap<Table>,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs").field("name", &self.name).finish()
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.table.load().pick(hello.server_name()).clone())
    }
}

impl Certs {
    /// Loads every pair; any that does not load is a problem, and nothing serves.
    pub fn load(name: &str, pairs: Vec<Pair>) -> Result<Arc<Certs>, Problems> {
        let mut problems = Problems::new();
        let mut loaded = Vec::with_capacity(pairs.len());
        for p in &pairs {
            match p.load() {
                Ok(l) => loaded.push(l),
                Err(e) => problems.push(&e.file, e.span, e.field, e.message),
            }
        }
        let Some(table) = Table::new(&loaded).filter(|_| problems.is_empty()) else {
            if problems.is_empty() {
                problems.push(Path::new(""), Span::default(), name, "no certificate");
            }
            return Err(problems);
        };
        Ok(Arc::new(Certs {
            name: name.to_string(),
            pairs,
            loaded: Mutex::new(loaded),
            table: ArcSwap::from_pointee(table),
        }))
    }

    /// Reads every pair again. A pair that no longer loads is refused with a log line naming
    /// its file and field, and its last good version keeps serving. Returns what was refused.
    pub fn reload(&self, why: &str) -> Vec<Problem> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let mut refused = Vec::new();
        for (i, pair) in self.pairs.iter().enumerate() {
            match pair.load() {
                Ok(l) => loaded[i] = l,
                Err(p) => {
                    log::error!(
                        "tls reload refused: {p}; {} keeps serving the certificate it had",
                        self.name
                    );
                    refused.push(p);
                }
            }
        }
        if let Some(table) = Table::new(&loaded) {
            self.table.store(Arc::new(table));
        }
        let names: Vec<&str> = (loaded.iter())
            .flat_map(|l| l.names.iter().map(String::as_str))
            .collect();
        log::info!(
            "tls reload: {} serving {} certificate(s) for {}{why}",
            self.name,
            loaded.len(),
            names.join(", ")
        );
        refused
    }

    /// Every file the pairs are read from, for the file watcher.
    pub fn files(&self) -> Vec<PathBuf> {
        (self.pairs.iter())
            .flat_map(|p| [p.cert.clone(), p.key.clone()])
            .collect()
    }
}

/// What a TLS listener serves: TLS 1.2 and 1.3 only, `h2` then `http/1.1` in ALPN, and the
/// certificate the client's SNI asks for.
pub fn server_config(certs: Arc<Certs>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let mut config = ServerConfig::builder_with_provider(provider().clone())
        .with_protocol_versions(&versions)?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// One TLS listener: the address it is bound to, and its handshake.
pub struct Listener {
    addr: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    certs: Arc<Certs>,
}

impl Listener {
    pub fn new(addr: SocketAddr, certs: Arc<Certs>) -> Result<Listener, rustls::Error> {
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(certs.clone())?);
        Ok(Listener {
            addr,
            acceptor,
            certs,
        })
    }
}

/// Every TLS listener of the process.
#[derive(Default)]
pub struct Listeners(Vec<Listener>);

impl Listeners {
    pub fn new(listeners: Vec<Listener>) -> Listeners {
        Listeners(listeners)
    }

    /// The handshake of the TLS listener a connection that arrived at `local` came through.
    pub fn acceptor(&self, local: SocketAddr) -> Option<&tokio_rustls::TlsAcceptor> {
        let ip = local.ip().to_canonical();
        (self.0.iter())
            .find(|l| {
                l.addr.port() == local.port()
                    && (l.addr.ip().is_unspecified() || l.addr.ip().to_canonical() == ip)
            })
            .map(|l| &l.acceptor)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each listener's certificates, for reloading them.
    pub fn certs(&self) -> Vec<Arc<Certs>> {
        self.0.iter().map(|l| l.certs.clone()).collect()
    }
}

#[cfg(test)]
mod tests;
