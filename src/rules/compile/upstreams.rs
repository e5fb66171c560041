//! `upstreams`: pools of peers, resolved once per snapshot.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use http::HeaderValue;

use super::{Compiler, Origin};
use crate::rules::model::UpstreamSpec;
use crate::rules::Upstream;
use crate::yaml::At;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerError {
    #[error("{0:?} needs a port (host:port)")]
    NoPort(String),
    #[error("{0:?}: port 0 cannot be connected to")]
    PortZero(String),
    #[error("{0:?} resolves to no address")]
    NoAddress(String),
    #[error("cannot resolve {peer:?}: {reason}")]
    Resolve { peer: String, reason: String },
}

impl Compiler<'_> {
    pub(super) fn upstream(&mut self, name: &str, o: &Origin<UpstreamSpec>) -> Upstream {
        let spec = &o.item.value;
        let field = format!("upstreams.{name}");
        if spec.peers.is_empty() {
            self.problem(
                o.file,
                o.item.span,
                format!("{field}.peers"),
                "needs at least one peer",
            );
        }
        let mut peers = Vec::new();
        let mut first_host = None;
        for p in &spec.peers {
            match resolve_peer(p) {
                Ok(addrs) => peers.extend(addrs),
                Err(e) => self.problem(o.file, p.span, format!("{field}.peers"), e.to_string()),
            }
            first_host.get_or_insert_with(|| p.rsplit_once(':').map_or(p.as_str(), |(h, _)| h));
        }
        let (sni_key, sni) = match (&spec.sni, &spec.host) {
            (Some(s), _) => ("sni", s.clone()),
            (None, Some(h)) => ("host", h.clone()),
            (None, None) => (
                "peers",
                first_host.map_or(String::new(), |h| h.trim_matches(['[', ']']).to_string()),
            ),
        };
        // Caught here, a bad name is one problem; at run time it fails every request.
        if spec.tls && !spec.peers.is_empty() && !valid_server_name(&sni) {
            let msg = format!("{sni:?} is not a TLS server name (a DNS name or an address)");
            self.problem(o.file, o.item.span, format!("{field}.{sni_key}"), msg);
        }
        if let Some(h) = &spec.host {
            if HeaderValue::from_str(h).is_err() || h.is_empty() {
                self.problem(
                    o.file,
                    o.item.span,
                    format!("{field}.host"),
                    format!("{h:?} is not a valid host"),
                );
            }
        }
        for (key, t) in [
            ("connect_timeout", spec.connect_timeout.0),
            ("read_timeout", spec.read_timeout.0),
        ] {
            // A zero limit expires before any peer can answer: every request would fail.
            if t == Duration::ZERO {
                let msg = "must be more than 0 (every request would time out)";
                self.problem(o.file, o.item.span, format!("{field}.{key}"), msg);
            }
        }
        Upstream {
            name: name.to_string(),
            peers,
            host: spec
                .host
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok()),
            tls: spec.tls,
            sni,
            connect_timeout: spec.connect_timeout.0,
            read_timeout: spec.read_timeout.0,
            next: AtomicUsize::new(0),
        }
    }
}

fn resolve_peer(p: &At<String>) -> Result<Vec<SocketAddr>, PeerError> {
    let addrs = match p.parse::<SocketAddr>() {
        Ok(a) => vec![a],
        Err(_) if !p.contains(':') => return Err(PeerError::NoPort(p.value.clone())),
        // Names are resolved once per snapshot, never per request.
        Err(_) => p
            .as_str()
            .to_socket_addrs()
            .map_err(|e| PeerError::Resolve {
                peer: p.value.clone(),
                reason: e.to_string(),
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(PeerError::NoAddress(p.value.clone()));
    }
    if addrs.iter().any(|a| a.port() == 0) {
        return Err(PeerError::PortZero(p.value.clone()));
    }
    Ok(addrs)
}

/// An address, or a DNS name of non-empty labels of letters, digits, `-` and `_`.
fn valid_server_name(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_need_a_real_port_and_server_names_are_checked() {
        let peer = |s: &str| resolve_peer(&At::new(s.to_string()));
        assert_eq!(peer("127.0.0.1:8081").unwrap().len(), 1);
        assert_eq!(
            peer("localhost"),
            Err(PeerError::NoPort("localhost".into()))
        );
        assert_eq!(
            peer("127.0.0.1:0"),
            Err(PeerError::PortZero("127.0.0.1:0".into()))
        );
        assert!(valid_server_name("origin.example.com"));
        assert!(valid_server_name("::1") && valid_server_name("10.0.0.1"));
        assert!(!valid_server_name("") && !valid_server_name("a b.example"));
        assert!(!valid_server_name("a..example"));
    }
}
