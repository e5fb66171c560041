//! `flowgate.yaml`: process settings. Parsed and validated before anything starts; every
//! problem is reported with file, line and field. Changing it takes a graceful restart.

mod duration;
mod limits;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::identity::{Cidr, CidrSet, ClientIpHeader};
use crate::problem::{Problems, Span};
use crate::yaml::At;

pub use crate::identity::{BotsConfig, DataSource, IntelConfig};
pub use duration::{ByteSize, Timeout};
pub use limits::{Limits, Listen};

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
    pub trusted_proxies: Vec<Cidr>,
    #[serde(default = "default_client_ip_header")]
    pub client_ip_header: At<String>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListener {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    #[default]
    File,
    Http,
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    #[serde(default)]
    pub sink: At<SinkKind>,
    #[serde(default)]
    pub file: FileSinkConfig,
    #[serde(default)]
    pub http: Option<At<HttpSinkConfig>>,
    /// Events waiting for the sink; when full, new events are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
    #[serde(default)]
    pub batch: BatchConfig,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            sink: At::new(SinkKind::File),
            file: FileSinkConfig::default(),
            http: None,
            queue: default_queue(),
            batch: BatchConfig::default(),
        }
    }
}

/// A batch is written or sent when any limit is reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "default_batch_events")]
    pub max_events: usize,
    #[serde(default = "default_batch_bytes")]
    pub max_bytes: ByteSize,
    #[serde(default = "default_batch_wait")]
    pub max_wait: Timeout,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: default_batch_events(),
            max_bytes: default_batch_bytes(),
            max_wait: default_batch_wait(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    #[serde(default = "default_events_dir")]
    pub dir: PathBuf,
    /// Start a new file past this size.
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: ByteSize,
    /// Start a new file every UTC day or hour.
    #[serde(default)]
    pub rotate: Rotate,
    /// Event files older than this are deleted.
    #[serde(default = "default_retain")]
    pub retain: Timeout,
}

impl Default for FileSinkConfig {
    fn default() -> Self {
        FileSinkConfig {
            dir: default_events_dir(),
            rotate_bytes: default_rotate_bytes(),
            rotate: Rotate::default(),
            retain: default_retain(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rotate {
    #[default]
    Daily,
    Hourly,
}

/// POST NDJSON batches to a collector (ClickHouse, Vector, ...).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    pub url: At<String>,
    #[serde(default)]
    pub gzip: bool,
    /// Extra request headers; a value may come from the environment or a file (secrets).
    #[serde(default)]
    pub headers: BTreeMap<String, At<SecretSource>>,
    #[serde(default = "default_http_timeout")]
    pub timeout: Timeout,
    /// Attempts after the first before a batch goes to the spool.
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_spool_dir")]
    pub spool_dir: PathBuf,
    #[serde(default = "default_spool_max")]
    pub spool_max_bytes: ByteSize,
}

/// `value`, `{ env: NAME }` or `{ file: path }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SecretSource {
    Value(String),
    Env { env: String },
    File { file: PathBuf },
}

impl SecretSource {
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            SecretSource::Value(v) => Ok(v.clone()),
            SecretSource::Env { env } => {
                std::env::var(env).map_err(|_| format!("environment variable {env} is not set"))
            }
            SecretSource::File { file } => std::fs::read_to_string(file)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("cannot read {}: {e}", file.display())),
        }
    }
}

/// Conversions reported by a tracker or an advertiser's server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostbackConfig {
    /// A path on the main listeners, e.g. `/postback`.
    pub path: At<String>,
    /// When set, requests must carry `token=` with this value.
    #[serde(default)]
    pub token: Option<At<SecretSource>>,
}

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

fn default_listen() -> Vec<Listen> {
    vec![Listen {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        proxy_protocol: false,
    }]
}
fn default_admin() -> Option<At<SocketAddr>> {
    Some(At::new(SocketAddr::from(([127, 0, 0, 1], 9180))))
}
fn default_trusted_proxies() -> Vec<Cidr> {
    ["127.0.0.1/32", "::1/128"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}
fn default_client_ip_header() -> At<String> {
    At::new("x-forwarded-for".to_string())
}
fn default_rules() -> PathBuf {
    PathBuf::from("../rules")
}
fn default_queue() -> usize {
    65_536
}
fn default_events_dir() -> PathBuf {
    PathBuf::from("../var/events")
}
fn default_batch_events() -> usize {
    1000
}
fn default_batch_bytes() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_batch_wait() -> Timeout {
    Timeout::from_secs(1)
}
fn default_rotate_bytes() -> ByteSize {
    ByteSize(256 << 20)
}
fn default_retain() -> Timeout {
    Timeout::from_secs(90 * 86_400)
}
fn default_http_timeout() -> Timeout {
    Timeout::from_secs(5)
}
fn default_retries() -> u32 {
    3
}
fn default_spool_dir() -> PathBuf {
    PathBuf::from("../var/spool")
}
fn default_spool_max() -> ByteSize {
    ByteSize(1 << 30)
}
fn default_salt_dir() -> PathBuf {
    PathBuf::from("../var/salt")
}
fn default_query_params() -> Vec<String> {
    ["utm_*", "gclid", "fbclid", "ttclid", "msclkid", "sub*"]
        .map(String::from)
        .to_vec()
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
    /// Reads, resolves and validates a config file.
    pub fn load(path: &Path) -> Result<Config, Problems> {
        let mut problems = Problems::new();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(path, Span::default(), "", format!("cannot read: {e}"));
                return Err(problems);
            }
        };
        let mut config: Config = match crate::yaml::parse(&text) {
            Ok(c) => c,
            Err(e) => {
                problems.push_yaml(path, &e);
                return Err(problems);
            }
        };
        config.path = path.to_path_buf();
        config.resolve_paths();
        config.validate(&mut problems);
        problems.into_result(config)
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
        abs(&mut self.events.file.dir);
        abs(&mut self.privacy.salt_dir);
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
            abs(&mut t.cert);
            abs(&mut t.key);
        }
    }

    fn validate(&self, problems: &mut Problems) {
        self.limits.validate(&self.path, problems);
        let mut seen = std::collections::HashSet::new();
        for l in &self.listen {
            if !seen.insert(l.addr) {
                let msg = format!("{} is listed twice", l.addr);
                problems.push(&self.path, Span::default(), "listen", msg);
            }
        }
        let file = &self.path;
        if self.listen.is_empty() && self.tls.is_empty() {
            problems.push(file, Span::default(), "listen", "no listener configured");
        }
        if let Err(e) = ClientIpHeader::parse(&self.client_ip_header) {
            let span = self.client_ip_header.span;
            problems.push(file, span, "client_ip_header", e);
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
        for (i, t) in self.tls.iter().enumerate() {
            for (what, p) in [("cert", &t.cert), ("key", &t.key)] {
                if !p.is_file() {
                    let msg = format!("{} does not exist", p.display());
                    problems.push(file, Span::default(), format!("tls[{i}].{what}"), msg);
                }
            }
        }
        match (&*self.events.sink, &self.events.http) {
            (SinkKind::Http, None) => {
                let msg = "sink: http needs events.http with a url";
                problems.push(file, self.events.sink.span, "events.sink", msg);
            }
            (_, Some(http)) => {
                if !(http.url.starts_with("http://") || http.url.starts_with("https://")) {
                    let msg = format!("{:?} must be an http:// or https:// URL", http.url.value);
                    problems.push(file, http.url.span, "events.http.url", msg);
                }
                for (name, source) in &http.headers {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        let msg = format!("{name:?} is not a header name");
                        problems.push(file, source.span, "events.http.headers", msg);
                    }
                    if let Err(e) = source.resolve() {
                        problems.push(file, source.span, format!("events.http.headers.{name}"), e);
                    }
                }
            }
            _ => {}
        }
        let b = &self.events.batch;
        if b.max_events == 0 || b.max_bytes.0 == 0 {
            problems.push(
                file,
                Span::default(),
                "events.batch",
                "limits must be positive",
            );
        }
        if let Some(p) = &self.postback {
            if !p.path.starts_with('/') {
                problems.push(file, p.path.span, "postback.path", "must start with /");
            }
            if let Some(Err(e)) = p.token.as_ref().map(|t| t.resolve()) {
                let span = p.token.as_ref().map_or(Span::default(), |t| t.span);
                problems.push(file, span, "postback.token", e);
            }
        }
        if self.events.queue == 0 {
            problems.push(file, Span::default(), "events.queue", "must be at least 1");
        }
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

    pub fn trusted_proxies(&self) -> CidrSet {
        CidrSet::new(self.trusted_proxies.iter().copied())
    }

    pub fn client_ip_source(&self) -> ClientIpHeader {
        ClientIpHeader::parse(&self.client_ip_header).unwrap_or(ClientIpHeader::XForwardedFor)
    }
}
