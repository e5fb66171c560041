//! Secrets in `flowgate.yaml` (collector headers, the postback token): a value, or where to
//! read it. Resolved once, when the config is validated; the resolved value is what serves.

use std::path::PathBuf;

use serde::Deserialize;

/// `value`, `{ env: NAME }` or `{ file: path }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SecretSource {
    Value(String),
    Env { env: String },
    File { file: PathBuf },
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvNotSet(String),
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SecretSource {
    pub fn resolve(&self) -> Result<String, SecretError> {
        match self {
            SecretSource::Value(v) => Ok(v.clone()),
            SecretSource::Env { env } => {
                std::env::var(env).map_err(|_| SecretError::EnvNotSet(env.clone()))
            }
            SecretSource::File { file } => std::fs::read_to_string(file)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|source| SecretError::Unreadable {
                    path: file.clone(),
                    source,
                }),
        }
    }
}
