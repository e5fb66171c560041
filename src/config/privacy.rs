//! `privacy:` in `flowgate.yaml`: how much of a visitor their click events keep.

use std::path::PathBuf;

use serde::Deserialize;

use crate::yaml::At;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    #[serde(default)]
    pub ip: At<IpPrivacy>,
    /// Query parameters events keep; a trailing `*` matches a prefix. Others are left out.
    #[serde(default = "default_query_params")]
    pub query_params: Vec<String>,
    /// `Sec-GPC: 1` (Global Privacy Control): the IP is truncated and the user agent left out.
    #[serde(default)]
    pub honor_gpc: bool,
    /// Where `ip: hash` keeps its daily secret salt (never sent anywhere).
    #[serde(default = "default_salt_dir")]
    pub salt_dir: PathBuf,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            ip: At::default(),
            query_params: default_query_params(),
            honor_gpc: false,
            salt_dir: default_salt_dir(),
        }
    }
}

/// How much of the visitor's address an event keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpPrivacy {
    /// The whole address.
    #[default]
    Full,
    /// IPv4 /24, IPv6 /48.
    Truncate,
    /// A keyed hash whose secret salt changes every UTC day: one pseudonym per visitor per day.
    Hash,
    /// No address at all.
    None,
}

fn default_salt_dir() -> PathBuf {
    PathBuf::from("../var/salt")
}
fn default_query_params() -> Vec<String> {
    ["utm_*", "gclid", "fbclid", "ttclid", "msclkid", "sub*"]
        .map(String::from)
        .to_vec()
}
