//! `flowgate intel update`: fetch every list and database that has a `url`, validate it with
//! the loader that serves it, and only then rename it over the old file. A failed, truncated
//! or corrupt download never replaces good data; the running flowgate reloads on its own.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{CidrSet, DataSource, IntelConfig, Mmdb};
use crate::problem::Problems;

/// What happened to one source.
pub struct Updated {
    pub key: String,
    pub file: PathBuf,
    pub result: Result<u64, String>,
}

/// Updates every source with a url, one after another; the others go on when one fails.
pub fn update_all(cfg: &IntelConfig) -> Vec<Updated> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(600)))
        .timeout_connect(Some(Duration::from_secs(15)))
        .http_status_as_error(false)
        .build()
        .into();
    cfg.sources()
        .filter_map(|(key, src)| src.url.as_ref().map(|url| (key, src, url)))
        .map(|(key, src, url)| {
            let is_list = key.starts_with("intel.lists.");
            let result = update_one(&agent, &src.value, url, is_list);
            Updated {
                key,
                file: src.file.clone(),
                result,
            }
        })
        .collect()
}

fn update_one(
    agent: &ureq::Agent,
    src: &DataSource,
    url: &str,
    is_list: bool,
) -> Result<u64, String> {
    let url = expand_env(url)?;
    let resp = agent
        .get(&url)
        .call()
        .map_err(|e| format!("download failed: {e}"))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(format!("download failed: HTTP {status}"));
    }
    let mut body = Vec::new();
    resp.into_body()
        .into_reader()
        .read_to_end(&mut body)
        .map_err(|e| format!("download broke off: {e}"))?;
    let data = unpack(body, is_list)?;

    let dir = src.file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = src
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("intel");
    let tmp = dir.join(format!(".{name}.download.{}", std::process::id()));
    let outcome = write_validate_rename(&tmp, &src.file, &data, src.skip_bad_lines, is_list);
    if outcome.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    outcome.map(|()| data.len() as u64)
}

fn write_validate_rename(
    tmp: &Path,
    dest: &Path,
    data: &[u8],
    skip_bad: bool,
    is_list: bool,
) -> Result<(), String> {
    let mut f =
        std::fs::File::create(tmp).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let mut problems = Problems::new();
    let valid = if is_list {
        CidrSet::load_with(tmp, skip_bad, &mut problems).is_some_and(|(set, _)| !set.is_empty())
    } else {
        Mmdb::open(tmp, &mut problems).is_some()
    };
    if !valid {
        let why = if problems.is_empty() {
            "the list is empty".to_string()
        } else {
            problems.to_string()
        };
        return Err(format!("downloaded data refused, old file kept: {why}"));
    }
    std::fs::rename(tmp, dest).map_err(|e| format!("cannot replace {}: {e}", dest.display()))
}

/// gzip and tar.gz (MaxMind's downloads) by their content, whatever the URL says.
fn unpack(body: Vec<u8>, is_list: bool) -> Result<Vec<u8>, String> {
    let body = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("not valid gzip: {e}"))?;
        out
    } else {
        body
    };
    let is_tar = body.len() >= 512 && &body[257..262] == b"ustar";
    if !is_tar {
        return Ok(body);
    }
    let wanted = if is_list {
        [".txt", ".csv", ".list"].as_slice()
    } else {
        [".mmdb"].as_slice()
    };
    tar_member(&body, wanted)
        .ok_or_else(|| format!("the archive holds no {} file", wanted.join("/")))
}

/// The first regular file in a tar archive whose name ends with one of `suffixes`.
fn tar_member(tar: &[u8], suffixes: &[&str]) -> Option<Vec<u8>> {
    let mut at = 0;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            return None;
        }
        let name = String::from_utf8_lossy(&header[..100])
            .trim_end_matches('\0')
            .to_string();
        let size_text = String::from_utf8_lossy(&header[124..136]);
        let size =
            usize::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8)
                .ok()?;
        let kind = header[156];
        let start = at + 512;
        let end = start.checked_add(size)?;
        if end > tar.len() {
            return None;
        }
        if (kind == b'0' || kind == 0) && suffixes.iter().any(|s| name.ends_with(s)) {
            return Some(tar[start..end].to_vec());
        }
        at = start + size.div_ceil(512) * 512;
    }
    None
}

/// `${NAME}` from the environment, so licence keys stay out of the config file.
fn expand_env(url: &str) -> Result<String, String> {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in url {url:?}"))?;
        let name = &rest[i + 2..i + end];
        let value = std::env::var(name)
            .map_err(|_| format!("environment variable {name} (in the url) is not set"))?;
        out.push_str(&value);
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion() {
        std::env::set_var("FLOWGATE_TEST_KEY", "abc");
        assert_eq!(
            expand_env("https://x/?k=${FLOWGATE_TEST_KEY}&s=1").unwrap(),
            "https://x/?k=abc&s=1"
        );
        assert!(expand_env("https://x/?k=${FLOWGATE_NOT_SET_ANYWHERE}").is_err());
    }
}
