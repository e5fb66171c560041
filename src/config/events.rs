//! `events:` in `flowgate.yaml`: which sink click events go to, and how they are batched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ByteSize, SecretSource, Timeout};
use crate::problem::{Problems, Span};
use crate::yaml::At;

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
    /// The collector is ClickHouse: flowgate writes the INSERT itself, sends typed rows, and
    /// `events forget` erases there too.
    #[serde(default)]
    pub clickhouse: Option<At<ClickHouseConfig>>,
    /// `headers` with their values read once by `validate`: what every batch is sent with.
    #[serde(skip)]
    resolved_headers: Vec<(String, String)>,
}

/// `events.http.clickhouse`: where in ClickHouse the events go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    #[serde(default = "default_clickhouse_database")]
    pub database: At<String>,
    /// The table rows are inserted into (`events` in `config/clickhouse/flowgate.sql`).
    #[serde(default = "default_clickhouse_table")]
    pub table: At<String>,
}

impl HttpSinkConfig {
    /// The extra request headers, as read when the config was validated.
    pub fn resolved_headers(&self) -> &[(String, String)] {
        &self.resolved_headers
    }
}

impl EventsConfig {
    /// Every problem of the `events:` section; reads the collector's header secrets once.
    pub fn validate(
        &mut self,
        file: &Path,
        problems: &mut Problems,
        warnings: &mut Problems,
        secrets: super::Secrets,
    ) {
        // The headers are sent only by the http sink; elsewhere a missing one stops nothing.
        let used = *self.sink == SinkKind::Http && secrets == super::Secrets::Used;
        match (&*self.sink, &mut self.http) {
            (SinkKind::Http, None) => {
                let msg = "sink: http needs events.http with a url";
                problems.push(file, self.sink.span, "events.sink", msg);
            }
            (_, Some(http)) => {
                if !(http.url.starts_with("http://") || http.url.starts_with("https://")) {
                    let msg = format!("{:?} must be an http:// or https:// URL", http.url.value);
                    problems.push(file, http.url.span, "events.http.url", msg);
                }
                if let Some(ch) = &http.clickhouse {
                    ch.validate(&http.url, file, problems);
                }
                let http = &mut http.value;
                for (name, source) in &http.headers {
                    if ::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        let msg = format!("{name:?} is not a header name");
                        problems.push(file, source.span, "events.http.headers", msg);
                    }
                    match source.resolve() {
                        Ok(v) => http.resolved_headers.push((name.clone(), v)),
                        Err(e) => {
                            let field = format!("events.http.headers.{name}");
                            let to = if used { &mut *problems } else { &mut *warnings };
                            to.push(file, source.span, field, e.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
        let b = &self.batch;
        if b.max_events == 0 || b.max_bytes.0 == 0 {
            let msg = "limits must be positive";
            problems.push(file, Span::default(), "events.batch", msg);
        }
        if self.queue == 0 {
            problems.push(file, Span::default(), "events.queue", "must be at least 1");
        }
    }
}

impl ClickHouseConfig {
    fn validate(&self, url: &At<String>, file: &Path, problems: &mut Problems) {
        if url.contains("query=") {
            let msg = "with events.http.clickhouse the url is the server's (http://host:8123/): \
                       flowgate writes the INSERT itself";
            problems.push(file, url.span, "events.http.url", msg);
        }
        for (field, name) in [("database", &self.database), ("table", &self.table)] {
            if !is_identifier(name) {
                let msg = format!(
                    "{:?} is not a ClickHouse name (letters, digits, _)",
                    name.value
                );
                let field = format!("events.http.clickhouse.{field}");
                problems.push(file, name.span, field, msg);
            }
        }
    }
}

/// A name that needs no quoting in SQL, so none can smuggle SQL into the statements built.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn default_clickhouse_database() -> At<String> {
    At::new("flowgate".to_string())
}
fn default_clickhouse_table() -> At<String> {
    At::new("events".to_string())
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
