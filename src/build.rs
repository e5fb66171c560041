//! The commit a binary was built from, for `flowgate_build_info{commit}`: `git rev-parse` when
//! building from a checkout, else `FLOWGATE_COMMIT` from the environment, else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FLOWGATE_COMMIT");
    // Where HEAD and the branch refs live (a worktree's `.git` is a file, not this folder).
    for p in ["HEAD", "refs/heads"] {
        if let Some(path) = git(&["rev-parse", "--git-path", p]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("FLOWGATE_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FLOWGATE_COMMIT={commit}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
