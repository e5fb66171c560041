//! The listening sockets. flowgate opens them itself — or takes them from the process it
//! replaces — before pingora starts, so every listener's real address is known up front (a
//! `:0` port included) and the rest of the process is built with it. Each socket reaches
//! pingora the way an upgrade hands sockets over: put in pingora's table of listening fds under
//! the key its service listens on, where pingora finds it instead of binding, and from where
//! the next `flowgate run --upgrade` is sent it.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{Fds, ListenFds, RuntimeOpts, ShutdownWatch};
use pingora::services::listening::Service as ListeningService;
use pingora::services::Service;

use crate::config::{Config, Listen};
use crate::lifecycle::Readiness;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{name} {addr}: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{name} {addr}: already used by {other}")]
    Twice {
        name: String,
        addr: SocketAddr,
        other: String,
    },
    #[error("tls {addr}: {message}")]
    Tls { addr: SocketAddr, message: String },
    #[error("cannot take the listening sockets from {}: {source}", path.display())]
    Handover {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One open listening socket: which listener of the config it is (`listen[0]`, `tls[0]`,
/// `admin`), the address it is bound to, and the key pingora's table knows it by.
pub struct Socket {
    pub name: String,
    pub addr: SocketAddr,
    pub key: String,
    listener: TcpListener,
}

/// The fd-table key of a listener. A fixed address is its own key, as pingora keys sockets
/// (so an older flowgate's sockets are taken over too); a `:0` address would collide with
/// every other `:0` listener on the same IP, so its key also names the listener.
pub fn key(name: &str, addr: SocketAddr) -> String {
    if addr.port() == 0 {
        format!("{addr}#{name}")
    } else {
        addr.to_string()
    }
}

/// Opens every listener of one process, from the sockets the previous process handed over
/// where there are some.
#[derive(Default)]
pub struct Opener {
    inherited: HashMap<String, OwnedFd>,
    opened: HashMap<String, String>,
}

impl Opener {
    /// For `run --upgrade`: waits (a few seconds, as pingora does) for the running flowgate to
    /// send its listening sockets on `upgrade_sock`, which it does on SIGQUIT.
    pub fn take_over(upgrade_sock: &Path) -> Result<Opener, ListenError> {
        let failed = |source| ListenError::Handover {
            path: upgrade_sock.to_path_buf(),
            source,
        };
        let path = upgrade_sock.to_str().ok_or_else(|| {
            failed(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path is not UTF-8",
            ))
        })?;
        let mut fds = Fds::new();
        fds.get_from_sock(path)
            .map_err(|e| failed(std::io::Error::from_raw_os_error(e as i32)))?;
        let (keys, raw) = fds.serialize();
        let inherited = keys
            .into_iter()
            .zip(raw)
            // SAFETY: each fd was just received over SCM_RIGHTS into this process; nothing
            // else holds it, so this is its only owner.
            .map(|(k, fd)| (k, unsafe { OwnedFd::from_raw_fd(fd) }))
            .collect();
        Ok(Opener {
            inherited,
            opened: HashMap::new(),
        })
    }

    pub fn open(&mut self, name: &str, addr: SocketAddr) -> Result<Socket, ListenError> {
        let key = key(name, addr);
        let failed = |source| ListenError::Bind {
            name: name.to_string(),
            addr,
            source,
        };
        if let Some(other) = self.opened.insert(key.clone(), name.to_string()) {
            return Err(ListenError::Twice {
                name: name.to_string(),
                addr,
                other,
            });
        }
        let listener = match self.inherited.remove(&key) {
            Some(fd) => TcpListener::from(fd),
            None => bind(addr).map_err(failed)?,
        };
        // pingora's accept loop runs on tokio, which needs the socket non-blocking.
        listener.set_nonblocking(true).map_err(failed)?;
        let bound = listener.local_addr().map_err(failed)?;
        Ok(Socket {
            name: name.to_string(),
            addr: bound,
            key,
            listener,
        })
    }

    /// Closes the handed-over sockets no listener took (the config changed), so none is left
    /// accepting connections nobody serves.
    pub fn close_unclaimed(self) {
        let left: HashSet<&String> = self.inherited.keys().collect();
        if !left.is_empty() {
            log::warn!("closed handed-over listening sockets no listener takes: {left:?}");
        }
    }
}

/// A pingora listening service on sockets flowgate opened.
pub type Served<A> = Prebound<ListeningService<A>>;

/// Every listener of a config, open, in config order.
pub struct Opened {
    pub plain: Vec<Socket>,
    pub tls: Vec<Socket>,
    pub admin: Option<Socket>,
}

impl Opened {
    /// `take_over`: the hand-over socket of `run --upgrade`.
    pub fn open(config: &Config, take_over: Option<&Path>) -> Result<Opened, ListenError> {
        let mut opener = match take_over {
            Some(sock) => Opener::take_over(sock)?,
            None => Opener::default(),
        };
        let mut open = |name: String, addr| opener.open(&name, addr);
        let plain = (config.listen.iter().enumerate())
            .map(|(i, l)| open(format!("listen[{i}]"), l.addr))
            .collect::<Result<_, _>>()?;
        let tls = (config.tls.iter().enumerate())
            .map(|(i, t)| open(format!("tls[{i}]"), *t.listen))
            .collect::<Result<_, _>>()?;
        let admin = (config.admin.as_ref())
            .map(|a| open("admin".to_string(), a.value))
            .transpose()?;
        opener.close_unclaimed();
        Ok(Opened { plain, tls, admin })
    }

    /// Every listener as the proxy counts them, plain then TLS, at the addresses they are
    /// bound to.
    pub fn listen(&self, config: &Config) -> Vec<Listen> {
        let plain =
            (self.plain.iter().zip(&config.listen)).map(|(s, l)| Listen { addr: s.addr, ..*l });
        let tls = self.tls.iter().map(|s| Listen {
            addr: s.addr,
            proxy_protocol: false,
        });
        plain.chain(tls).collect()
    }

    /// `a, b (tls), admin on c` (or `admin off`) for the start-up line.
    pub fn summary(&self) -> String {
        let served: Vec<String> = (self.plain.iter().map(|s| s.addr.to_string()))
            .chain(self.tls.iter().map(|s| format!("{} (tls)", s.addr)))
            .collect();
        let admin = (self.admin.as_ref())
            .map_or("admin off".to_string(), |a| format!("admin on {}", a.addr));
        format!("{}, {admin}", served.join(", "))
    }

    /// Each TLS listener's certificates, loaded, and its handshake.
    pub fn tls(&self, config: &Config) -> Result<crate::tls::Listeners, ListenError> {
        let mut out = Vec::with_capacity(self.tls.len());
        for (s, t) in self.tls.iter().zip(&config.tls) {
            let failed = |message: String| ListenError::Tls {
                addr: *t.listen,
                message,
            };
            let certs = crate::tls::Certs::load(&s.name, t.pairs(&config.path))
                .map_err(|p| failed(p.to_string()))?;
            let listener =
                crate::tls::Listener::new(s.addr, certs).map_err(|e| failed(e.to_string()))?;
            out.push(listener);
        }
        Ok(crate::tls::Listeners::new(out))
    }

    /// The proxy's service on the plain and TLS sockets, and the admin listener's (one
    /// thread) on its socket, if there is one.
    /// `ready` is told once the proxy's sockets reach its accept loops.
    pub fn into_services<P, A>(
        self,
        proxy: P,
        admin: A,
        ready: Readiness,
    ) -> Result<(Served<P>, Option<Served<A>>), ListenError> {
        let mut service = ListeningService::new("flowgate".to_string(), proxy);
        for s in &self.plain {
            service.add_tcp(&s.key);
        }
        // TLS sockets too: flowgate does the handshake itself, on the thread that serves the
        // connection (see `tls`).
        for s in &self.tls {
            service.add_tcp(&s.key);
        }
        let sockets = self.plain.into_iter().chain(self.tls).collect();
        let proxy = Prebound {
            ready: Some(ready),
            ..Prebound::new(service, sockets)
        };
        let admin = self.admin.map(|socket| {
            let mut service = ListeningService::new("admin".to_string(), admin);
            service.threads = Some(1);
            service.add_tcp(&socket.key);
            Prebound::new(service, vec![socket])
        });
        Ok((proxy, admin))
    }
}

/// Binds as pingora does (std sets `SO_REUSEADDR` on Unix, as pingora does too, so a port
/// whose last process just exited is free at once). Unlike pingora it does not retry a port in
/// use: whoever holds it now holds it still, and start-up fails at once, saying so.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// A pingora service whose sockets are already open: they go into pingora's fd table, under
/// the keys the service listens on, just before the service looks there.
pub struct Prebound<S> {
    service: S,
    sockets: Vec<Socket>,
    ready: Option<Readiness>,
}

impl<S> Prebound<S> {
    /// `service` must listen on each socket's `key`.
    pub fn new(service: S, sockets: Vec<Socket>) -> Prebound<S> {
        Prebound {
            service,
            sockets,
            ready: None,
        }
    }
}

#[async_trait]
impl<S: Service> Service for Prebound<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        // pingora always passes its table on Unix; without one the sockets would close here
        // and pingora would try to bind the keys itself.
        if let Some(table) = &fds {
            let mut table = table.lock();
            for s in self.sockets.drain(..) {
                log::info!("listening on {} ({})", s.addr, s.name);
                table.add(s.key, s.listener.into_raw_fd());
            }
        }
        // The sockets are listening and now the accept loops' (a connection made meanwhile
        // waits in the backlog): this process serves.
        if let Some(ready) = &self.ready {
            ready.serving();
        }
        self.service
            .start_service(fds, shutdown, listeners_per_fd)
            .await
    }

    fn name(&self) -> &str {
        self.service.name()
    }

    fn threads(&self) -> Option<usize> {
        self.service.threads()
    }

    fn runtime_opts_override(&self, global: &RuntimeOpts) -> Option<RuntimeOpts> {
        self.service.runtime_opts_override(global)
    }

    fn on_startup_delay(&self, time_waited: Duration) {
        self.service.on_startup_delay(time_waited)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.service.listen_addresses()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_port_is_opened_and_its_real_port_known() {
        let mut opener = Opener::default();
        let a = opener.open("listen[0]", "127.0.0.1:0".parse().unwrap());
        let b = opener.open("admin", "127.0.0.1:0".parse().unwrap());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a.addr.port(), 0);
        assert_ne!(a.addr, b.addr);
        assert_eq!(a.key, "127.0.0.1:0#listen[0]");
        assert_eq!(b.key, "127.0.0.1:0#admin");
        assert!(std::net::TcpStream::connect(a.addr).is_ok());
    }

    #[test]
    fn a_fixed_address_is_its_own_key_as_pingora_keys_it() {
        let addr: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(key("tls[1]", addr), "[::]:8080");
    }

    #[test]
    fn one_key_cannot_serve_two_listeners() {
        let mut opener = Opener::default();
        let addr = "127.0.0.1:0".parse().unwrap();
        let _first = opener.open("admin", addr).unwrap();
        let again = opener.open("admin", addr).err().map(|e| e.to_string());
        let want = "admin 127.0.0.1:0: already used by admin".to_string();
        assert_eq!(again, Some(want));
    }
}
