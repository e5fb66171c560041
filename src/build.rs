//! The commit a binary was built from, for `flowgate_build_info{commit}`: `git rev-parse` when
//! building from a checkout, else `FLOWGATE_COMMIT` from the environment, else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FLOWGATE_COMMIT");
    // HEAD and the one ref it names (a worktree's `.git` is a file, not this folder): not all
    // of refs/heads, which worktrees share, or every commit on any branch would rebuild
    // flowgate in every worktree. A ref without a loose file is in packed-refs.
    let git_path = |p: &str| git(&["rev-parse", "--git-path", p]);
    let branch = git(&["rev-parse", "--symbolic-full-name", "HEAD"]).filter(|r| r != "HEAD");
    let loose = branch.as_deref().and_then(git_path);
    let loose = loose.filter(|p| std::path::Path::new(p).exists());
    let watched = [git_path("HEAD"), loose.or_else(|| git_path("packed-refs"))];
    for path in watched.into_iter().flatten() {
        println!("cargo:rerun-if-changed={path}");
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
