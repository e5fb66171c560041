//! `flowgate.yaml`: process settings. Parsed and validated before anything starts; every
//! problem is reported with file, line and field. SIGHUP applies every setting but the
//! sockets and the process's shape (`Config::cold_changes`); those take a restart or upgrade.

mod duration;
mod events;
mod limits;
mod log;
mod postback;
mod privacy;
mod proxies;
mod secret;
mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::identity::{Cidr, CidrSet, ClientIpHeader};
use crate::problem::{Problems, Span};
use crate::yaml::At;

pub use crate::identity::{BotsConfig, DataSource, IntelConfig};
pub use duration::{ByteSize, Timeout, UnitError};
pub use events::{
    BatchConfig, ClickHouseConfig, EventsConfig, FileSinkConfig, HttpSinkConfig, Rotate, SinkKind,
};
pub use limits::{CertPair, Limits, Listen, TlsListener};
pub use log::{LogConfig, LogFormat};
pub use postback::PostbackConfig;
pub use privacy::{IpPrivacy, PrivacyConfig};
pub use proxies::TrustedProxy;
pub use secret::{SecretError, SecretSource};
pub use state::StateConfig;

pub const DEFAULT_PATH: &str = "config/flowgate.yaml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file this was read from; relative paths inside are resolved against its folder.
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(default = "default_listen")]
    pub listen: Vec<Listen>,
    #[serde(default)]
    pub tls: Vec<TlsListener>,
    /// `/metrics`, `/healthz`, `/readyz`; `null` turns it off.
    #[serde(default = "default_admin")]
    pub admin: Option<At<SocketAddr>>,
    #[serde(default = "default_trusted_proxies")]
    pub trusted_proxies: Vec<At<TrustedProxy>>,
    #[serde(default = "default_client_ip_header")]
    pub client_ip_header: At<String>,
    /// `client_ip_header`, parsed by `validate`.
    #[serde(skip)]
    client_ip: ClientIpHeader,
    #[serde(default = "default_rules")]
    pub rules: PathBuf,
    /// Rules evaluated beside the live ones for every request, never changing a response;
    /// `flowgate_shadow_decisions_total` shows what they would do.
    #[serde(default)]
    pub shadow_rules: Option<PathBuf>,
    #[serde(default)]
    pub intel: IntelConfig,
    #[serde(default)]
    pub events: EventsConfig,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub postback: Option<PostbackConfig>,
    /// The click store behind `unique` and `cap`.
    #[serde(default)]
    pub state: StateConfig,
    /// Worker threads for the proxy; default: one per core.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Sizes, counts and deadlines for visitor connections.
    #[serde(default)]
    pub limits: Limits,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Timeout,
    /// Where the old process hands its listening sockets to `flowgate run --upgrade`.
    /// Default: one per config file in the temp folder, so two flowgates never share it.
    #[serde(default)]
    pub upgrade_sock: Option<PathBuf>,
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// `format: text | json` for flowgate's own log lines.
    #[serde(default)]
    pub log: LogConfig,
    /// What is wrong but stops nothing: secrets that cannot be read where nothing uses them.
    #[serde(skip)]
    warnings: Problems,
}

/// Which secrets must be readable for the config to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Those `run` uses (a secret nothing uses is a warning): `run`, `check`.
    Used,
    /// None: a command that sends nothing anywhere (`events forget`, `explain`).
    Unused,
}

fn default_listen() -> Vec<Listen> {
    vec![Listen {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        proxy_protocol: false,
    }]
}
fn default_admin() -> Option<At<SocketAddr>> {
    Some(At::new(SocketAddr::from(([127, 0, 0, 1], 9180))))
}
fn default_trusted_proxies() -> Vec<At<TrustedProxy>> {
    ["127.0.0.1/32", "::1/128"]
        .iter()
        .filter_map(|s| s.parse::<Cidr>().ok())
        .map(|c| At::new(TrustedProxy::Net(c)))
        .collect()
}
fn default_client_ip_header() -> At<String> {
    At::new("x-forwarded-for".to_string())
}
fn default_rules() -> PathBuf {
    PathBuf::from("../rules")
}
fn default_shutdown_timeout() -> Timeout {
    Timeout::from_secs(10)
}

/// `config/../rules` -> `rules`, without touching the file system (symlinks stay as written).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

impl Config {
    /// Reads, resolves and validates a config file, for `run`.
    pub fn load(path: &Path) -> Result<Config, Problems> {
        Config::load_for(path, Secrets::Used)
    }

    /// `load`, for a command that needs only the secrets `secrets` says.
    pub fn load_for(path: &Path, secrets: Secrets) -> Result<Config, Problems> {
        match Config::load_checked(path, secrets) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(problems),
        }
    }

    /// Every problem, and the config whenever it parsed (even with problems), so `check`
    /// can go on to check the rules and data it names.
    pub fn load_checked(path: &Path, secrets: Secrets) -> (Option<Config>, Problems) {
        let mut problems = Problems::new();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                let msg = format!("cannot read: {}", crate::problem::io_reason(&e));
                problems.push(path, Span::default(), "", msg);
                return (None, problems);
            }
        };
        let Some(mut config) = crate::yaml::load::<Config>(path, &text, &mut problems) else {
            return (None, problems);
        };
        config.path = path.to_path_buf();
        config.resolve_paths();
        config.validate(&mut problems, secrets);
        (Some(config), problems)
    }

    /// Problems that stop nothing (an unreadable secret nothing uses), for `check` to show.
    pub fn warnings(&self) -> &Problems {
        &self.warnings
    }

    fn resolve_paths(&mut self) {
        let base = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = normalize(&base.join(&*p));
            }
        };
        abs(&mut self.rules);
        if let Some(p) = &mut self.shadow_rules {
            abs(p);
        }
        let i = &mut self.intel;
        for s in [&mut i.country, &mut i.city, &mut i.asn, &mut i.anonymous]
            .into_iter()
            .flatten()
        {
            abs(&mut s.value.file);
        }
        i.lists.values_mut().for_each(|s| abs(&mut s.value.file));
        i.crawlers.values_mut().for_each(|s| abs(&mut s.value.file));
        abs(&mut self.events.file.dir);
        abs(&mut self.privacy.salt_dir);
        abs(&mut self.state.path);
        if let Some(http) = &mut self.events.http {
            abs(&mut http.value.spool_dir);
            for h in http.value.headers.values_mut() {
                if let SecretSource::File { file } = &mut h.value {
                    abs(file);
                }
            }
        }
        if let Some(SecretSource::File { file }) = self
            .postback
            .as_mut()
            .and_then(|p| p.token.as_mut())
            .map(|t| &mut t.value)
        {
            abs(file);
        }
        for p in [&mut self.upgrade_sock, &mut self.pid_file]
            .into_iter()
            .flatten()
        {
            abs(p);
        }
        for t in &mut self.tls {
            t.paths_mut().for_each(abs);
        }
    }

    /// Checks every section, keeping what the checks parse (the client-IP header, secrets)
    /// as typed values, so nothing is parsed again, or differently, later.
    fn validate(&mut self, problems: &mut Problems, secrets: Secrets) {
        let file = &self.path.clone();
        self.limits.validate(file, problems);
        let mut seen = std::collections::HashSet::new();
        for l in &self.listen {
            if !seen.insert(l.addr) {
                let msg = format!("{} is listed twice", l.addr);
                problems.push(file, Span::default(), "listen", msg);
            }
        }
        if self.listen.is_empty() && self.tls.is_empty() {
            problems.push(file, Span::default(), "listen", "no listener configured");
        }
        match ClientIpHeader::parse(&self.client_ip_header) {
            Ok(h) => self.client_ip = h,
            Err(e) => {
                let span = self.client_ip_header.span;
                problems.push(file, span, "client_ip_header", e.to_string());
            }
        }
        if !self.rules.is_dir() {
            let msg = format!("{} is not a folder", self.rules.display());
            problems.push(file, Span::default(), "rules", msg);
        }
        if let Some(p) = self.shadow_rules.as_ref().filter(|p| !p.is_dir()) {
            let msg = format!("{} is not a folder", p.display());
            problems.push(file, Span::default(), "shadow_rules", msg);
        }
        self.intel.validate(file, problems);
        for (i, p) in self.trusted_proxies.iter().enumerate() {
            if let TrustedProxy::List(name) = &p.value {
                if !self.intel.lists.contains_key(name) {
                    let known: Vec<&str> = self.intel.lists.keys().map(String::as_str).collect();
                    let msg = format!(
                        "no list named {name:?} in intel.lists (lists: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    );
                    problems.push(file, p.span, format!("trusted_proxies[{i}]"), msg);
                }
            }
        }
        for (i, t) in self.tls.iter_mut().enumerate() {
            t.validate(file, i, problems);
        }
        let mut warnings = Problems::new();
        self.events.validate(file, problems, &mut warnings, secrets);
        self.state.validate(file, problems);
        if let Some(p) = &mut self.postback {
            let needed = match secrets {
                Secrets::Used => &mut *problems,
                Secrets::Unused => &mut warnings,
            };
            p.validate(file, needed);
        }
        self.warnings = warnings;
        if self.threads == Some(0) {
            problems.push(file, Span::default(), "threads", "must be at least 1");
        }
    }

    /// `(upgrade socket, pid file)`: as configured, else named after this config file.
    pub fn process_files(&self) -> (PathBuf, PathBuf) {
        let id = {
            let path = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
            let mut h: u32 = 0x811c_9dc5;
            for b in path.as_os_str().as_encoded_bytes() {
                h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
            }
            h
        };
        let tmp = std::env::temp_dir();
        let sock = self.upgrade_sock.clone();
        let pid = self.pid_file.clone();
        (
            sock.unwrap_or_else(|| tmp.join(format!("flowgate-{id:08x}.upgrade.sock"))),
            pid.unwrap_or_else(|| tmp.join(format!("flowgate-{id:08x}.pid"))),
        )
    }

    /// The trusted proxies: the networks written inline and those of the named lists, as
    /// loaded in `lists`.
    pub fn trusted_proxies(&self, lists: &[crate::identity::IpList]) -> CidrSet {
        let inline = CidrSet::new(self.trusted_proxies.iter().filter_map(|p| match &p.value {
            TrustedProxy::Net(c) => Some(*c),
            TrustedProxy::List(_) => None,
        }));
        let named = self.trusted_proxies.iter().filter_map(|p| match &p.value {
            TrustedProxy::List(name) => lists.iter().find(|l| &l.name == name).map(|l| &l.set),
            TrustedProxy::Net(_) => None,
        });
        CidrSet::union(std::iter::once(&inline).chain(named))
    }

    /// The settings that differ from `running`'s and cannot change in a running process
    /// (sockets, threads, the upgrade and pid files, the drain budget, the state store), by
    /// config key.
    pub fn cold_changes(&self, running: &Config) -> Vec<&'static str> {
        // Debug of a value leaves out where it was written (see `At`), so moving a line is
        // not a change.
        let differ =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        let mut changed = Vec::new();
        let (new, old) = (self, running);
        if differ(&new.listen, &old.listen) {
            changed.push("listen");
        }
        if differ(&new.tls, &old.tls) {
            changed.push("tls");
        }
        if differ(&new.admin, &old.admin) {
            changed.push("admin");
        }
        if new.threads != old.threads {
            changed.push("threads");
        }
        if new.upgrade_sock != old.upgrade_sock {
            changed.push("upgrade_sock");
        }
        if new.pid_file != old.pid_file {
            changed.push("pid_file");
        }
        if new.shutdown_timeout != old.shutdown_timeout {
            changed.push("shutdown_timeout");
        }
        if differ(&new.state, &old.state) {
            changed.push("state");
        }
        changed
    }

    /// Whether the event sink or what events carry differ from `running`'s: the event worker
    /// then restarts with the new settings.
    pub fn events_changed(&self, running: &Config) -> bool {
        format!("{:?}{:?}", self.events, self.privacy)
            != format!("{:?}{:?}", running.events, running.privacy)
    }

    /// Keeps `running`'s cold settings (see `cold_changes`), so what serves stays what the
    /// process was started with until it restarts.
    pub fn keep_cold(&mut self, running: &Config) {
        self.listen.clone_from(&running.listen);
        self.tls.clone_from(&running.tls);
        self.admin.clone_from(&running.admin);
        self.threads = running.threads;
        self.upgrade_sock.clone_from(&running.upgrade_sock);
        self.pid_file.clone_from(&running.pid_file);
        self.shutdown_timeout = running.shutdown_timeout;
        self.state.clone_from(&running.state);
    }

    /// `client_ip_header`, as validation parsed it.
    pub fn client_ip_source(&self) -> &ClientIpHeader {
        &self.client_ip
    }
}

#[cfg(test)]
mod tests;
