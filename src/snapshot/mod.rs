//! One immutable generation of routing state, and the live pointer to it. A reload builds a
//! complete new snapshot off the request path and swaps it in only if nothing failed.

mod answer;
mod meters;
mod names;
mod rule_tests;
mod sample;
mod settings;
pub mod watch;

pub use answer::{Answer, Target, Todo};
pub use meters::{visitor_kind, Meters};
pub use names::Names;
pub use sample::{DecisionView, Explanation, SampleError, SampleRequest, VisitorView};
pub use settings::{Postback, Settings};

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::identity::Intel;
use crate::metrics::Metrics;
use crate::problem::Problems;
use crate::rules::{self, Rules};
use crate::state::Caps;

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
    /// What the request path reads from the config this snapshot was built with.
    pub settings: Arc<Settings>,
    /// The series its requests count into; none unless built by a `Live` with metrics.
    pub meters: Meters,
}

/// What each stage of a build found, for `check` to report stage by stage.
pub struct Stages {
    pub intel: Problems,
    /// The rules and the shadow rules.
    pub rules: Problems,
    /// `None`: not run, as an earlier stage has problems.
    pub tests: Option<Problems>,
    /// Built only when no stage has a problem.
    pub snapshot: Option<Snapshot>,
}

impl Snapshot {
    /// Loads intel data, compiles the rules and runs the rule tests. Every problem in any of
    /// them is reported; a snapshot exists only when there are none.
    /// Caps count for nothing beyond this snapshot (`flowgate check`, `explain`).
    pub fn build(config: &Config, generation: u64) -> Result<Snapshot, Problems> {
        Snapshot::build_with(config, generation, &Caps::default())
    }

    /// The same, with caps counting in the process's `caps` (they outlive the snapshot).
    pub fn build_with(config: &Config, generation: u64, caps: &Caps) -> Result<Snapshot, Problems> {
        let s = Snapshot::build_stages(config, generation, caps);
        match s.snapshot {
            Some(snapshot) => Ok(snapshot),
            None => {
                let mut problems = s.intel;
                problems.extend(s.rules);
                problems.extend(s.tests.unwrap_or_default());
                Err(problems)
            }
        }
    }

    /// `build_with`, keeping each stage's problems apart.
    pub fn build_stages(config: &Config, generation: u64, caps: &Caps) -> Stages {
        let mut intel_problems = Problems::new();
        let intel = Intel::load(&config.intel, &mut intel_problems);
        let mut stages = Stages {
            intel: intel_problems,
            rules: Problems::new(),
            tests: None,
            snapshot: None,
        };
        let rules = match rules::load_with(&config.rules, &intel, caps) {
            Ok(rules) => rules,
            Err(more) => {
                stages.rules = more;
                return stages;
            }
        };
        let keeps = &config.privacy.query_params;
        for (source, param) in rules::sources::kept_in_clear(&rules.sources, keeps) {
            let msg = format!(
                "keeps {param:?}, which sources.{source} hashes: its clear value would be kept \
                 in events and the click store; take it out"
            );
            (stages.rules).push(
                &config.path,
                Default::default(),
                "privacy.query_params",
                msg,
            );
        }
        let shadow = match &config.shadow_rules {
            Some(dir) => match rules::load_with(dir, &intel, caps) {
                Ok(r) => Some(r),
                Err(more) => {
                    stages.rules = more;
                    None
                }
            },
            None => None,
        };
        let snapshot = Snapshot {
            generation,
            names: Names::new(&rules, &intel),
            settings: Arc::new(Settings::new(config, &intel)),
            rules,
            intel,
            shadow,
            tests: 0,
            meters: Meters::default(),
        };
        if !stages.intel.is_empty() || !stages.rules.is_empty() {
            return stages;
        }
        let mut problems = Problems::new();
        let tests = rule_tests::run(&snapshot, &config.rules, &mut problems);
        if problems.is_empty() {
            stages.snapshot = Some(Snapshot { tests, ..snapshot });
        }
        stages.tests = Some(problems);
        stages
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
        let crawlers = self.intel.crawlers.loaded().map(|(name, set)| SourceCount {
            source: format!("crawlers.{name}"),
            kind: SourceKind::List,
            entries: set.entries() as u64,
            skipped: Some(0),
            built: None,
        });
        Report {
            generation: self.generation,
            intel: lists.chain(crawlers).chain(dbs).collect(),
        }
    }
}

/// The snapshot serving traffic. Requests pin one with `current()` and keep it to the end.
pub struct Live {
    current: ArcSwap<Snapshot>,
    /// The config the serving snapshot was built from.
    config: ArcSwap<Config>,
    /// Where each new snapshot's series are made; `None` outside `flowgate run`.
    metrics: Option<Arc<Metrics>>,
    /// One reload at a time: SIGHUP and the watcher may ask together.
    reloading: Mutex<()>,
    /// The process's cap counters: every snapshot's caps count in them.
    caps: Arc<Caps>,
}

/// What a reload of `flowgate.yaml` changed beside the snapshot.
pub struct ConfigChange {
    /// Changed settings that wait for a restart or an upgrade (`Config::cold_changes`).
    pub cold: Vec<&'static str>,
    /// The event sink or privacy settings changed: the event worker must restart.
    pub events: bool,
    /// The config now serving.
    pub config: Arc<Config>,
}

impl Live {
    /// Caps count only in this `Live` (tests and benches).
    pub fn new(config: Arc<Config>) -> Result<Live, Problems> {
        Live::serving(config, None, Arc::new(Caps::default()))
    }

    /// A live snapshot whose every generation counts its requests in `metrics` and its caps
    /// in `caps`, the process's (`State::caps`).
    pub fn serving(
        config: Arc<Config>,
        metrics: Option<Arc<Metrics>>,
        caps: Arc<Caps>,
    ) -> Result<Live, Problems> {
        let mut snapshot = Snapshot::build_with(&config, 1, &caps)?;
        if let Some(m) = &metrics {
            snapshot.meters = Meters::new(&snapshot.rules, m);
        }
        Ok(Live {
            current: ArcSwap::from_pointee(snapshot),
            config: ArcSwap::new(config),
            metrics,
            reloading: Mutex::new(()),
            caps,
        })
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The serving snapshot's settings, for a connection to keep.
    pub fn settings(&self) -> Arc<Settings> {
        self.current.load().settings.clone()
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// The files and folders snapshots are built from, for the watcher.
    pub fn sources(&self) -> watch::Sources {
        let config = self.config.load();
        let files = (config.intel.sources())
            .map(|(_, s)| s.file.clone())
            .collect();
        let folders = std::iter::once(&config.rules)
            .chain(config.shadow_rules.as_ref())
            .cloned()
            .collect();
        watch::Sources { folders, files }
    }

    /// A snapshot of `config`, with its series made when this process counts requests.
    fn build(&self, config: &Config, generation: u64) -> Result<Snapshot, Problems> {
        let mut snapshot = Snapshot::build_with(config, generation, &self.caps)?;
        if let Some(m) = &self.metrics {
            snapshot.meters = Meters::new(&snapshot.rules, m);
        }
        Ok(snapshot)
    }

    /// Rebuilds from the files on disk and says what now serves. On any problem the serving
    /// snapshot stays and the problems come back instead.
    pub fn reload(&self) -> Result<Report, Problems> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.current.load().generation + 1;
        let snapshot = self.build(&self.config.load(), generation)?;
        let report = snapshot.report();
        self.current.store(Arc::new(snapshot));
        Ok(report)
    }

    /// Reads `flowgate.yaml` again, then rebuilds as `reload` does with it. Settings that
    /// need new sockets or another process keep their running values and are named in the
    /// change; a config with any problem changes nothing.
    pub fn reload_config(&self) -> Result<(Report, ConfigChange), Problems> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let running = self.config.load_full();
        let mut config = Config::load(&running.path)?;
        let cold = config.cold_changes(&running);
        config.keep_cold(&running);
        let events = config.events_changed(&running);
        let config = Arc::new(config);
        let generation = self.current.load().generation + 1;
        let snapshot = self.build(&config, generation)?;
        let report = snapshot.report();
        self.config.store(config.clone());
        self.current.store(Arc::new(snapshot));
        Ok((
            report,
            ConfigChange {
                cold,
                events,
                config,
            },
        ))
    }
}
