//! Secrets in `flowgate.yaml` (collector headers, the postback token): a value, or where to
//! read it. Resolved once, when the config is validated; the resolved value is what serves.

use std::path::PathBuf;

use serde::Deserialize;

/// `value`, `{ env: NAME }` or `{ file: path }`.
#[derive(Debug, Clone)]
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

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Where {
            env: Option<String>,
            file: Option<PathBuf>,
        }
        // By hand rather than `untagged`, so a wrong key is named.
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretSource;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value, { env: NAME } or { file: path }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretSource, E> {
                Ok(SecretSource::Value(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<SecretSource, A::Error> {
                let w = Where::deserialize(serde::de::value::MapAccessDeserializer::new(m))?;
                match (w.env, w.file) {
                    (Some(env), None) => Ok(SecretSource::Env { env }),
                    (None, Some(file)) => Ok(SecretSource::File { file }),
                    _ => Err(serde::de::Error::custom(
                        "expected exactly one of { env: NAME } or { file: path }",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
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
