//! One immutable generation of routing state, and the live pointer to it. A reload builds a
//! complete new snapshot off the request path and swaps it in only if nothing failed.

mod answer;
mod meters;
mod names;
mod rule_tests;
mod sample;
pub mod watch;

pub use answer::{Answer, Target, Todo};
pub use meters::{visitor_kind, Meters};
pub use names::Names;
pub use sample::{DecisionView, Explanation, SampleError, SampleRequest, VisitorView};

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
    /// The live rules' and the lists' names, for click events.
    pub names: Names,
    /// The series its requests count into; none unless built by a `Live` with metrics.
    pub meters: Meters,
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
            names: Names::new(&rules, &intel),
            rules,
            intel,
            shadow,
            tests: 0,
            meters: Meters::default(),
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let tests = rule_tests::run(&snapshot, &config.rules, &mut problems);
        problems.into_result(Snapshot { tests, ..snapshot })
    }
}

/// What a built snapshot holds, for whoever keeps count of it (metrics, the log): a reload
/// says what it did with this, and records nothing itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub generation: u64,
    /// Every intel source loaded: lists first, then the databases that are configured.
    pub intel: Vec<SourceCount>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCount {
    /// A list's name, or the database kind (`country`, `city`, `asn`, `anonymous`).
    pub source: String,
    pub kind: SourceKind,
    /// Networks of a list, nodes of a database.
    pub entries: u64,
    /// Lines a `skip_bad_lines` list skipped; `None` for databases.
    pub skipped: Option<u64>,
    /// When the data was built (unix seconds): a database's build time, a list file's
    /// modification time.
    pub built: Option<u64>,
}

/// What `SourceCount::entries` counts: a list's networks or a database's tree nodes, which
/// are not comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    List,
    Database,
}

impl Snapshot {
    pub fn report(&self) -> Report {
        let lists = self.intel.lists.iter().map(|list| SourceCount {
            source: list.name.clone(),
            kind: SourceKind::List,
            entries: list.set.entries() as u64,
            skipped: Some(list.skipped as u64),
            built: list.modified,
        });
        let dbs = [
            ("country", &self.intel.country),
            ("city", &self.intel.city),
            ("asn", &self.intel.asn),
            ("anonymous", &self.intel.anonymous),
        ];
        let dbs = dbs.into_iter().filter_map(|(source, db)| {
            db.as_ref().map(|db| SourceCount {
                source: source.to_string(),
                kind: SourceKind::Database,
                entries: u64::from(db.node_count()),
                skipped: None,
                built: Some(db.built()),
            })
        });
        Report {
            generation: self.generation,
            intel: lists.chain(dbs).collect(),
        }
    }
}

/// The snapshot serving traffic. Requests pin one with `current()` and keep it to the end.
pub struct Live {
    current: ArcSwap<Snapshot>,
    config: Arc<Config>,
    /// Where each new snapshot's series are made; `None` outside `flowgate run`.
    metrics: Option<Arc<Metrics>>,
    /// One reload at a time: SIGHUP and the watcher may ask together.
    reloading: Mutex<()>,
}

impl Live {
    pub fn new(config: Arc<Config>) -> Result<Live, Problems> {
        Live::serving(config, None)
    }

    /// A live snapshot whose every generation counts its requests in `metrics`.
    pub fn serving(config: Arc<Config>, metrics: Option<Arc<Metrics>>) -> Result<Live, Problems> {
        let mut snapshot = Snapshot::build(&config, 1)?;
        if let Some(m) = &metrics {
            snapshot.meters = Meters::new(&snapshot.rules, m);
        }
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

    /// Rebuilds from the files on disk and says what now serves. On any problem the serving
    /// snapshot stays and the problems come back instead.
    pub fn reload(&self) -> Result<Report, Problems> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.current.load().generation + 1;
        let mut snapshot = Snapshot::build(&self.config, generation)?;
        if let Some(m) = &self.metrics {
            snapshot.meters = Meters::new(&snapshot.rules, m);
        }
        let report = snapshot.report();
        self.current.store(Arc::new(snapshot));
        Ok(report)
    }
}
