//! Loads every rule file in the rules folder, checks names across files, and compiles the
//! result. All problems are collected; nothing is compiled from a folder that has any.
//!
//! One file per part of a rule file: `files` (finding, reading and merging files),
//! `upstreams`, `routes`, `campaigns` (with their flows and splits), `conditions` (one
//! check per condition kind) and `schedule`.

mod campaigns;
mod caps;
mod claims;
mod conditions;
mod files;
mod routes;
mod schedule;
mod sources;
mod upstreams;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::model::RuleFile;
use super::rate::RateLimiter;
use super::{Route, RouteId, Rules};
use crate::identity::Intel;
use crate::problem::{Problems, Span};
use crate::state::Caps;
use crate::yaml::At;

pub use files::rule_files;

/// Compiles the rule files of a folder, with caps that count for nothing beyond the
/// returned rules (`flowgate check`, `explain`).
pub fn load(dir: &Path, intel: &Intel) -> Result<Rules, Problems> {
    load_with(dir, intel, &Caps::default())
}

/// Compiles the rule files of a folder; caps count in the process's `caps`, so a reload
/// keeps their counts.
pub fn load_with(dir: &Path, intel: &Intel, caps: &Caps) -> Result<Rules, Problems> {
    let mut problems = Problems::new();
    let parsed = files::read(dir, &mut problems);
    compile(&parsed, intel, caps, problems)
}

/// Compiles rule files given as `(path, text)`, as `load` would from a folder holding them.
#[cfg(test)]
pub(crate) fn from_texts(texts: &[(&str, &str)], intel: &Intel) -> Result<Rules, Problems> {
    let mut problems = Problems::new();
    let parsed = texts
        .iter()
        .filter_map(|(path, text)| {
            let path = PathBuf::from(path);
            files::parse(&path, text, &mut problems).map(|f| (path, f))
        })
        .collect::<Vec<_>>();
    compile(&parsed, intel, &Caps::default(), problems)
}

fn compile(
    parsed: &[(PathBuf, RuleFile)],
    intel: &Intel,
    caps: &Caps,
    mut problems: Problems,
) -> Result<Rules, Problems> {
    if !problems.is_empty() {
        return Err(problems);
    }
    let rules = Compiler {
        problems: &mut problems,
        intel,
        rates: HashMap::new(),
        caps,
        scope: (0, 0),
    }
    .compile(parsed);
    problems.into_result(rules)
}

struct Compiler<'a> {
    problems: &'a mut Problems,
    intel: &'a Intel,
    /// `per: ip` limiters by `(max, window)`: one count per visitor across the rules.
    rates: HashMap<(u32, Duration), Arc<RateLimiter>>,
    caps: &'a Caps,
    /// `(campaign, flow)` scopes of the flow being compiled, for `unique`.
    scope: (u64, u64),
}

/// Where a named thing was defined, for "defined twice" messages.
struct Origin<'f, T> {
    file: &'f Path,
    item: &'f At<T>,
}

impl Compiler<'_> {
    fn problem(
        &mut self,
        file: &Path,
        span: Span,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.problems.push(file, span, field, msg);
    }

    fn compile(&mut self, files: &[(PathBuf, RuleFile)]) -> Rules {
        let upstream_specs = self.gather(files, "upstreams", |f| &f.upstreams);
        let route_specs = self.gather(files, "routes", |f| &f.routes);

        let upstream_index: HashMap<&str, usize> = upstream_specs
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let upstreams = upstream_specs
            .iter()
            .map(|(name, o)| self.upstream(name, o))
            .collect();

        let mut routes: Vec<Route> = route_specs
            .iter()
            .map(|(name, o)| self.route(name, o, &upstream_index))
            .collect();
        let mut route_index: HashMap<String, RouteId> = routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();

        let fallback = self.fallback(files, &mut routes, &mut route_index);
        let campaigns = self.campaigns(files, &route_index);
        let sources = self.sources(files);

        Rules {
            upstreams,
            routes,
            // A source that forwards conversions needs its clicks found again.
            remembers: Rules::asks_state(&campaigns)
                || sources.iter().any(|s| s.postback.is_some()),
            asks_unique: Rules::asks_unique(&campaigns),
            sources,
            campaigns,
            fallback,
        }
    }
}

/// `; known: a, b` for an "unknown name" message, or nothing when there are none.
/// `; did you mean "x"?` when one of the names is close to `name`, else `; known: a, b`.
fn known_or_nearest<S: AsRef<str>>(name: &str, names: impl IntoIterator<Item = S>) -> String {
    let mut v: Vec<String> = names.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        return String::new();
    }
    v.sort();
    let hint = crate::suggest::did_you_mean(name, &v);
    if hint.is_empty() {
        format!("; known: {}", v.join(", "))
    } else {
        hint
    }
}
