//! One immutable generation of routing state, and the live pointer to it. A reload builds a
//! complete new snapshot off the request path and swaps it in only if nothing failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
}

impl Snapshot {
    /// Loads intel data and compiles the rules. Every problem in either is reported.
    pub fn build(config: &Config, generation: u64) -> Result<Snapshot, Problems> {
        let mut problems = Problems::new();
        let intel = Intel::load(&config.intel, &mut problems);
        match rules::load(&config.rules, &intel) {
            Ok(rules) => problems.into_result(Snapshot {
                generation,
                rules,
                intel,
            }),
            Err(more) => {
                problems.extend(more);
                Err(problems)
            }
        }
    }
}

/// The snapshot serving traffic. Requests pin one with `current()` and keep it to the end.
pub struct Live {
    current: ArcSwap<Snapshot>,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    generation: AtomicU64,
}

impl Live {
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>) -> Result<Live, Problems> {
        let snapshot = Snapshot::build(&config, 1)?;
        publish(&metrics, &snapshot);
        Ok(Live {
            current: ArcSwap::from_pointee(snapshot),
            config,
            metrics,
            generation: AtomicU64::new(1),
        })
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Rebuilds from the files on disk. On any problem the serving snapshot stays.
    pub fn reload(&self) -> Result<u64, Problems> {
        let generation = self.generation.load(Ordering::Relaxed) + 1;
        match Snapshot::build(&self.config, generation) {
            Ok(snapshot) => {
                publish(&self.metrics, &snapshot);
                self.current.store(Arc::new(snapshot));
                self.generation.store(generation, Ordering::Relaxed);
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
