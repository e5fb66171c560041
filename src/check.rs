//! `flowgate check`: every stage `run` goes through before it serves (the config, its TLS
//! files, the folders it writes, the intel data, the rules, the rule tests), each checked and
//! reported even when an earlier one failed, so one broken certificate does not hide a rule
//! mistake. Exit 1 when any stage has a problem.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, Secrets, SinkKind};
use crate::problem::{Problems, Span};
use crate::snapshot::Snapshot;

pub fn check(path: &Path) -> ExitCode {
    let (config, problems) = Config::load_checked(path, Secrets::Used);
    let (tls, rest) = split(&problems, |p| p.field.starts_with("tls"));
    let mut stages: Vec<(&str, Option<Problems>)> =
        vec![("config", Some(rest)), ("tls", Some(tls))];
    let mut built = None;
    match &config {
        Some(config) => {
            for w in config.warnings().iter() {
                eprintln!("warning: {w}");
            }
            stages.push(("folders", Some(folders(config))));
            let s = Snapshot::build_stages(config, 0, &Default::default());
            stages.push(("intel data", Some(s.intel)));
            stages.push(("rules", Some(s.rules)));
            stages.push(("rule tests", s.tests));
            built = s.snapshot;
        }
        None => {
            for stage in ["folders", "intel data", "rules", "rule tests"] {
                stages.push((stage, None));
            }
        }
    }
    let total: usize = stages.iter().flat_map(|(_, p)| p).map(Problems::len).sum();
    if let (0, Some(s)) = (total, built) {
        println!(
            "{}: ok ({} campaigns, {} routes, {} upstreams, {} ip lists, {} rule tests passed)",
            path.display(),
            s.rules.campaigns.len(),
            s.rules.routes.len(),
            s.rules.upstreams.len(),
            s.intel.lists.len(),
            s.tests
        );
        return ExitCode::SUCCESS;
    }
    for p in stages.iter().flat_map(|(_, p)| p) {
        if !p.is_empty() {
            eprintln!("{p}");
        }
    }
    let summary: Vec<String> = stages
        .iter()
        .map(|(name, p)| match p {
            None => format!("{name} not run"),
            Some(p) if p.is_empty() => format!("{name} ok"),
            Some(p) => format!("{name} {} problem(s)", p.len()),
        })
        .collect();
    eprintln!("{}: {}", path.display(), summary.join(", "));
    eprintln!("{}: {total} problem(s)", path.display());
    ExitCode::FAILURE
}

/// `(matching, the rest)`.
fn split(all: &Problems, f: impl Fn(&crate::problem::Problem) -> bool) -> (Problems, Problems) {
    let (mut yes, mut no) = (Problems::new(), Problems::new());
    for p in all.iter() {
        let to = if f(p) { &mut yes } else { &mut no };
        to.push(&p.file, p.span, p.field.clone(), p.message.clone());
    }
    (yes, no)
}

/// The folders `run` creates and writes before it serves: the event sink's, and the salt's
/// when addresses are hashed. Checked without creating anything.
fn folders(config: &Config) -> Problems {
    let mut problems = Problems::new();
    let ev = &config.events;
    let mut dirs = Vec::new();
    match (*ev.sink, &ev.http) {
        (SinkKind::File, _) => dirs.push(("events.file.dir", ev.file.dir.as_path())),
        (SinkKind::Http, Some(http)) => dirs.push(("events.http.spool_dir", &http.spool_dir)),
        _ => {}
    }
    if config.privacy.ip.value == crate::config::IpPrivacy::Hash {
        dirs.push(("privacy.salt_dir", &config.privacy.salt_dir));
    }
    // The state store's file and keys live in its folder.
    let state_dir = config.state.dir().to_path_buf();
    dirs.push(("state.path", &state_dir));
    for (key, dir) in dirs {
        if let Err(why) = writable_dir(dir) {
            problems.push(&config.path, Span::default(), key, why);
        }
    }
    problems
}

/// Whether `run` can create (if need be) and write this folder.
pub fn writable_dir(dir: &Path) -> Result<(), String> {
    let mut at = dir;
    loop {
        match std::fs::metadata(at) {
            Ok(m) if !m.is_dir() => {
                return Err(if at == dir {
                    format!("{} is not a folder", dir.display())
                } else {
                    format!(
                        "cannot create {}: {} is not a folder",
                        dir.display(),
                        at.display()
                    )
                });
            }
            Ok(_) if !writable(at) => {
                return Err(if at == dir {
                    format!("{} is not writable", dir.display())
                } else {
                    format!(
                        "cannot create {}: {} is not writable",
                        dir.display(),
                        at.display()
                    )
                });
            }
            Ok(_) => return Ok(()),
            Err(_) => match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p,
                _ => return Ok(()),
            },
        }
    }
}

fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}
