//! `rules/tests/*.yaml`: sample visitors and the decision each must get. Run on every build,
//! so a change that breaks one never serves.

use std::path::Path;

use serde::Deserialize;

use super::{SampleRequest, Snapshot};
use crate::problem::{Problems, Span};
use crate::yaml::At;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleTest {
    name: String,
    request: SampleRequest,
    /// What the state answers for this request (`unique`, what caps counted); a test never
    /// reads or changes the live state.
    #[serde(default)]
    state: crate::state::TestState,
    expect: Expect,
}

/// What must hold; fields left out are not checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    campaign: Option<String>,
    flow: Option<String>,
    route: Option<String>,
}

/// Runs every test file in `<rules>/tests`; returns how many tests ran.
pub fn run(snapshot: &Snapshot, rules_dir: &Path, problems: &mut Problems) -> usize {
    let dir = rules_dir.join("tests");
    if !dir.is_dir() {
        return 0;
    }
    let mut ran = 0;
    for file in crate::rules::rule_files(&dir, problems) {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(
                    &file,
                    Span::default(),
                    "",
                    format!("cannot read: {}", crate::problem::io_reason(&e)),
                );
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        let Some(tests) = crate::yaml::load::<Vec<At<RuleTest>>>(&file, &text, problems) else {
            continue;
        };
        for t in &tests {
            ran += 1;
            let field = format!("test {:?}", t.name);
            let e = &t.expect;
            if e.campaign.is_none() && e.flow.is_none() && e.route.is_none() {
                problems.push(&file, t.span, field, "expect needs campaign, flow or route");
                continue;
            }
            let got = match snapshot.explain_assuming(&t.request, &t.state) {
                Ok(x) => x.decision,
                Err(e) => {
                    problems.push(&file, t.span, field, e.to_string());
                    continue;
                }
            };
            let mut wrong = Vec::new();
            let mut compare = |what: &str, want: &Option<String>, have: Option<&str>| {
                if let Some(want) = want {
                    if Some(want.as_str()) != have {
                        wrong.push(format!("{what} {want:?}, got {:?}", have.unwrap_or("none")));
                    }
                }
            };
            compare("campaign", &e.campaign, got.campaign.as_deref());
            compare("flow", &e.flow, got.flow.as_deref());
            compare("route", &e.route, Some(got.route.as_str()));
            if !wrong.is_empty() {
                let msg = format!("failed: expected {}", wrong.join("; "));
                problems.push(&file, t.span, field, msg);
            }
        }
    }
    ran
}
