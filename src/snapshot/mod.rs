//! One immutable generation of routing state, and the live pointer to it. A reload builds a
//! complete new snapshot off the request path and swaps it in only if nothing failed.

mod rule_tests;
mod sample;
pub mod watch;

pub use sample::{DecisionView, Explanation, SampleRequest, VisitorView};

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::identity::Intel;
use crate::metrics::Metrics;
use crate::problem::Problems;
use crate::rules::{self, Rules};

pub struct Snapshot {
    pub generation: u64,
    pub rules: Rules,
    pub intel: Intel,
    /// `shadow_rules`: evaluated for every request, only counted.
    pub shadow: Option<Rules>,
    /// Rule tests that passed on this snapshot.
    pub tests: usize,
}

impl Snapshot {
    /// Loads intel data, compiles the rules and runs the rule tests. Every problem in any of
    /// them is reported; a snapshot exists only when there are none.
    pub fn build(config: &Config, generation: u64) -> Result<Snapshot, Problems> {
        let mut problems = Problems::new();
        let intel = Intel::load(&config.intel, &mut problems);
        let rules = match rules::load(&config.rules, &intel) {
            Ok(rules) => rules,
            Err(more) => {
                problems.extend(more);
                return Err(problems);
            }
        };
        let shadow = match &config.shadow_rules {
            Some(dir) => match rules::load(dir, &intel) {
                Ok(r) => Some(r),
                Err(more) => {
                    problems.extend(more);
                    None
                }
            },
            None => None,
        };
        let snapshot = Snapshot {
            generation,
            rules,
            intel,
            shadow,
            tests: 0,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let tests = rule_tests::run(&snapshot, &config.rules, &mut problems);
        problems.into_result(Snapshot { tests, ..snapshot })
    }
}

/// The snapshot serving traffic. Requests pin one with `current()` and keep it to the end.
pub struct Live {
    current: ArcSwap<Snapshot>,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    /// One reload at a time: SIGHUP and the watcher may ask together.
    reloading: Mutex<()>,
}

impl Live {
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>) -> Result<Live, Problems> {
        let snapshot = Snapshot::build(&config, 1)?;
        publish(&metrics, &snapshot);
        Ok(Live {
            current: ArcSwap::from_pointee(snapshot),
            config,
            metrics,
            reloading: Mutex::new(()),
        })
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The files and folders snapshots are built from, for the watcher.
    pub fn sources(&self) -> watch::Sources {
        let files = self
            .config
            .intel
            .sources()
            .map(|(_, s)| s.file.clone())
            .collect();
        let folders = std::iter::once(&self.config.rules)
            .chain(self.config.shadow_rules.as_ref())
            .cloned()
            .collect();
        watch::Sources { folders, files }
    }

    /// Rebuilds from the files on disk. On any problem the serving snapshot stays.
    pub fn reload(&self) -> Result<u64, Problems> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.current.load().generation + 1;
        match Snapshot::build(&self.config, generation) {
            Ok(snapshot) => {
                publish(&self.metrics, &snapshot);
                self.current.store(Arc::new(snapshot));
                self.metrics.reloads.with_label_values(&["ok"]).inc();
                Ok(generation)
            }
            Err(problems) => {
                self.metrics.reloads.with_label_values(&["error"]).inc();
                Err(problems)
            }
        }
    }
}

fn publish(metrics: &Metrics, s: &Snapshot) {
    metrics.snapshot_generation.set(s.generation as i64);
    for list in &s.intel.lists {
        metrics
            .intel_entries
            .with_label_values(&[list.name.as_str()])
            .set(list.set.entries() as i64);
        metrics
            .intel_skipped_lines
            .with_label_values(&[list.name.as_str()])
            .set(list.skipped as i64);
    }
    let dbs = [
        ("country", &s.intel.country),
        ("city", &s.intel.city),
        ("asn", &s.intel.asn),
        ("anonymous", &s.intel.anonymous),
    ];
    for (source, db) in dbs {
        if let Some(db) = db {
            metrics
                .intel_entries
                .with_label_values(&[source])
                .set(i64::from(db.node_count()));
        }
    }
}
