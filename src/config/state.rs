//! `state:` in `flowgate.yaml`: the click store behind `unique` and `cap` — where it lives,
//! how long it remembers a click, and how much of it the request path keeps in memory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Timeout;
use crate::problem::Problems;
use crate::yaml::At;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// How long a click (and what `unique` knows of its visitor) is kept.
    #[serde(default = "default_retention")]
    pub retention: At<Timeout>,
    /// The embedded database file; its folder also holds the cookie and visitor keys.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// The window of the click event's `unique` field: no earlier click of the visitor in
    /// the campaign within it.
    #[serde(default = "default_unique_window")]
    pub unique_window: At<Timeout>,
    /// Visitor × campaign (or flow) entries kept in memory for cookie-less visitors.
    #[serde(default = "default_visitors")]
    pub visitors: At<usize>,
    /// Clicks waiting for the store's writer; when full, new ones are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: At<usize>,
    /// A shared store for several nodes (`redis://host:port/db`): clicks, last-seen times,
    /// caps and the state's keys in Redis (or Valkey) instead of the embedded database.
    #[serde(default)]
    pub redis: Option<At<String>>,
    /// How long a request waits for the shared store before it answers from what this
    /// process knows.
    #[serde(default = "default_deadline")]
    pub deadline: At<Timeout>,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            retention: default_retention(),
            path: default_path(),
            unique_window: default_unique_window(),
            visitors: default_visitors(),
            queue: default_queue(),
            redis: None,
            deadline: default_deadline(),
        }
    }
}

fn default_retention() -> At<Timeout> {
    At::new(Timeout::from_secs(90 * 86_400))
}
fn default_path() -> PathBuf {
    PathBuf::from("../var/state/state.db")
}
fn default_unique_window() -> At<Timeout> {
    At::new(Timeout::from_secs(86_400))
}
fn default_visitors() -> At<usize> {
    At::new(1 << 20)
}
fn default_deadline() -> At<Timeout> {
    At::new(Timeout(std::time::Duration::from_millis(5)))
}
fn default_queue() -> At<usize> {
    At::new(65_536)
}

impl StateConfig {
    pub fn validate(&self, file: &Path, problems: &mut Problems) {
        if self.retention.0.as_secs() < 3600 {
            let msg = "must be at least 1h (clicks are purged by the hour)";
            problems.push(file, self.retention.span, "state.retention", msg);
        }
        if self.unique_window.0.as_secs() == 0 {
            let msg = "must be at least 1s";
            problems.push(file, self.unique_window.span, "state.unique_window", msg);
        } else if self.unique_window.0 > self.retention.0 {
            let msg = "is longer than state.retention: visitors are forgotten before it ends";
            problems.push(file, self.unique_window.span, "state.unique_window", msg);
        }
        if self.visitors.value == 0 {
            problems.push(
                file,
                self.visitors.span,
                "state.visitors",
                "must be at least 1",
            );
        }
        if self.queue.value == 0 {
            problems.push(file, self.queue.span, "state.queue", "must be at least 1");
        }
        if let Some(r) = &self.redis {
            // Checked here, so a bad URL is named with its line before anything starts.
            if let Err(e) = redis::Client::open(r.value.as_str()) {
                problems.push(file, r.span, "state.redis", format!("{e}"));
            }
        }
        let d = self.deadline.0;
        if d.is_zero() || d > std::time::Duration::from_secs(1) {
            let msg = "must be between 1ms and 1s (requests wait this long for a shared store)";
            problems.push(file, self.deadline.span, "state.deadline", msg);
        }
        if self.path.file_name().is_none() || self.path.is_dir() {
            let msg = format!("{} must name a database file", self.path.display());
            problems.push(file, Default::default(), "state.path", msg);
        }
    }

    /// The folder of the database, where the keys live too.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}
