//! `postback:` in `flowgate.yaml`: where trackers report conversions.

use std::path::Path;

use serde::Deserialize;

use super::SecretSource;
use crate::problem::Problems;
use crate::yaml::At;

/// Conversions reported by a tracker or an advertiser's server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostbackConfig {
    /// A path on the main listeners, e.g. `/postback`.
    pub path: At<String>,
    /// When set, requests must carry `token=` with this value.
    #[serde(default)]
    pub token: Option<At<SecretSource>>,
    /// `token`, read once by `validate`: what requests are checked against.
    #[serde(skip)]
    resolved_token: Option<String>,
}

impl PostbackConfig {
    /// Checks the path and reads the token; a token that cannot be read is a problem, so a
    /// config that loaded always checks the token it names.
    pub fn validate(&mut self, file: &Path, problems: &mut Problems) {
        if !self.path.starts_with('/') {
            problems.push(file, self.path.span, "postback.path", "must start with /");
        }
        let Some(token) = &self.token else { return };
        match token.resolve() {
            Ok(t) => self.resolved_token = Some(t),
            Err(e) => problems.push(file, token.span, "postback.token", e.to_string()),
        }
    }

    /// The token requests must carry, as read at load; `None` when none is configured.
    pub fn resolved_token(&self) -> Option<&str> {
        self.resolved_token.as_deref()
    }
}
