//! What the request path reads from `flowgate.yaml`, built with each snapshot, so a SIGHUP
//! changes it together with the rules. A connection keeps the settings it was accepted with.

use crate::config::{Config, Limits};
use crate::identity::{CidrSet, ClientIpHeader, Intel};

pub struct Settings {
    /// Inline networks and named lists, as one set.
    pub trusted_proxies: CidrSet,
    pub client_ip_header: ClientIpHeader,
    pub limits: Limits,
    pub postback: Option<Postback>,
}

/// `postback:` from the config, with the token resolved.
pub struct Postback {
    pub path: String,
    pub token: Option<String>,
}

impl Settings {
    pub fn new(config: &Config, intel: &Intel) -> Settings {
        Settings {
            trusted_proxies: config.trusted_proxies(&intel.lists),
            client_ip_header: config.client_ip_source().clone(),
            limits: config.limits.clone(),
            postback: config.postback.as_ref().map(|p| Postback {
                path: p.path.value.clone(),
                token: p.resolved_token().map(String::from),
            }),
        }
    }
}
