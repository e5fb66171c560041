//! One certificate and key pair from its PEM files: the chain, the key checked against the
//! certificate, and the DNS names the certificate answers for.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::{Pair, Part};
use crate::problem::Problem;

/// A pair ready to serve.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// Lowercase, as in the certificate's subjectAltName: `shop.example.com`, `*.example.com`.
    pub names: Vec<String>,
}

pub(super) fn load(pair: &Pair) -> Result<Loaded, Problem> {
    let cert_file = read(&pair.cert).map_err(|m| pair.problem(Part::Cert, m))?;
    let chain = CertificateDer::pem_slice_iter(&cert_file)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pair.problem(Part::Cert, pem_problem(&pair.cert, &e, "certificate")))?;
    let Some(leaf) = chain.first() else {
        let msg = format!("{}: no PEM certificate in the file", pair.cert.display());
        return Err(pair.problem(Part::Cert, msg));
    };
    let names = names(leaf).map_err(|m| pair.problem(Part::Cert, m))?;
    if names.is_empty() {
        let msg = format!(
            "{}: the certificate names no DNS name in its subjectAltName, so no client could \
             verify it",
            pair.cert.display()
        );
        return Err(pair.problem(Part::Cert, msg));
    }
    let key_file = read(&pair.key).map_err(|m| pair.problem(Part::Key, m))?;
    let key = PrivateKeyDer::from_pem_slice(&key_file)
        .map_err(|e| pair.problem(Part::Key, pem_problem(&pair.key, &e, "private key")))?;
    let key = CertifiedKey::from_der(chain, key, super::provider()).map_err(|e| {
        let msg = match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => format!(
                "{}: the key does not match the certificate in {}",
                pair.key.display(),
                pair.cert.display()
            ),
            other => format!("{}: {other}", pair.key.display()),
        };
        pair.problem(Part::Key, msg)
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        names,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        let why = crate::problem::io_reason(&e);
        format!("cannot read {}: {why}", path.display())
    })
}

fn pem_problem(path: &Path, e: &pem::Error, what: &str) -> String {
    match e {
        pem::Error::NoItemsFound => format!("{}: no PEM {what} in the file", path.display()),
        other => format!("{}: not a PEM {what}: {other}", path.display()),
    }
}

/// The DNS names of the certificate's subjectAltName, as a client checks them (the subject's
/// common name counts for nothing to a browser, so it does not here either).
fn names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let cert = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let mut names: Vec<String> = cert
        .valid_dns_names()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    names.dedup();
    Ok(names)
}
