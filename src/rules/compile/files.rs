//! Finding and reading the rule files of a folder, and merging their named sections.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Compiler, Origin};
use crate::problem::{Problems, Span};
use crate::rules::model::RuleFile;
use crate::yaml::At;

/// The rule files of a folder, sorted by name. `tests/` holds rule tests, not rules.
pub fn rule_files(dir: &Path, problems: &mut Problems) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(
                dir,
                Span::default(),
                "",
                format!(
                    "cannot read rules folder: {}",
                    crate::problem::io_reason(&e)
                ),
            );
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

/// Every rule file of a folder, parsed; a folder without any is a problem.
pub(super) fn read(dir: &Path, problems: &mut Problems) -> Vec<(PathBuf, RuleFile)> {
    let mut parsed = Vec::new();
    for path in rule_files(dir, problems) {
        match std::fs::read_to_string(&path) {
            Err(e) => problems.push(
                &path,
                Span::default(),
                "",
                format!("cannot read: {}", crate::problem::io_reason(&e)),
            ),
            Ok(text) => {
                if let Some(f) = parse(&path, &text, problems) {
                    parsed.push((path, f));
                }
            }
        }
    }
    if parsed.is_empty() && problems.is_empty() {
        problems.push(
            dir,
            Span::default(),
            "",
            "no rule files (*.yaml) in the rules folder",
        );
    }
    parsed
}

pub(super) fn parse(path: &Path, text: &str, problems: &mut Problems) -> Option<RuleFile> {
    // Most likely a file caught mid-write (truncated, not yet filled): serving "no rules"
    // from it would send every visitor to the fallback.
    if is_blank_yaml(text) {
        problems.push(
            path,
            Span::default(),
            "",
            "empty rule file (write `{}` if it is meant to be empty)",
        );
        return None;
    }
    crate::yaml::load::<RuleFile>(path, text, problems)
}

/// Nothing but white space and comments.
fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    })
}

impl Compiler<'_> {
    /// Merges one named section across files; a name defined twice is a problem.
    pub(super) fn gather<'f, T>(
        &mut self,
        files: &'f [(PathBuf, RuleFile)],
        section: &str,
        get: impl Fn(&'f RuleFile) -> &'f BTreeMap<String, At<T>>,
    ) -> BTreeMap<String, Origin<'f, T>> {
        let mut out: BTreeMap<String, Origin<'f, T>> = BTreeMap::new();
        for (file, f) in files {
            for (name, item) in get(f) {
                if let Some(prev) = out.get(name) {
                    let msg = format!(
                        "{name:?} is also defined at {}:{}",
                        prev.file.display(),
                        prev.item.span.line
                    );
                    self.problem(file, item.span, format!("{section}.{name}"), msg);
                    continue;
                }
                if name.is_empty() {
                    self.problem(file, item.span, section, "a name cannot be empty");
                }
                out.insert(name.clone(), Origin { file, item });
            }
        }
        out
    }
}
