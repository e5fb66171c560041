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
    pub result: Result<u64, UpdateError>,
}

/// Why one source was not updated; its old file stays in every case.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("unclosed ${{ in url {0:?}")]
    UnclosedVariable(String),
    #[error("environment variable {0} (in the url) is not set")]
    UnsetVariable(String),
    #[error("download failed: {0}")]
    Download(#[source] ureq::Error),
    #[error("download failed: HTTP {0}")]
    Status(u16),
    #[error("download broke off: {0}")]
    BrokeOff(#[source] std::io::Error),
    #[error("not valid gzip: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("the archive holds no {0} file")]
    NoMember(String),
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", file.display())]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("downloaded data refused, old file kept: the list is empty")]
    EmptyList,
    #[error("downloaded data refused, old file kept: {0}")]
    Refused(Problems),
    #[error("downloaded bot list refused, old file kept: {0}")]
    BadBotList(String),
    #[error("cannot replace {}: {source}", file.display())]
    Replace {
        file: PathBuf,
        source: std::io::Error,
    },
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
            let kind = if key == "intel.bots.list" {
                Kind::BotList
            } else if key.starts_with("intel.lists.") {
                Kind::IpList
            } else if key.starts_with("intel.crawlers.") {
                Kind::Crawler
            } else {
                Kind::Database
            };
            let result = update_one(&agent, &src.value, url, kind);
            Updated {
                key,
                file: src.file.clone(),
                result,
            }
        })
        .collect()
}

/// What a source holds, which says how a download is checked (by the loader that will read
/// it) before it replaces the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Database,
    IpList,
    BotList,
    /// A crawler's ranges: published JSON or a CIDR list.
    Crawler,
}

fn update_one(
    agent: &ureq::Agent,
    src: &DataSource,
    url: &str,
    kind: Kind,
) -> Result<u64, UpdateError> {
    let url = expand_env(url)?;
    let resp = agent.get(&url).call().map_err(UpdateError::Download)?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(UpdateError::Status(status));
    }
    let mut body = Vec::new();
    resp.into_body()
        .into_reader()
        .read_to_end(&mut body)
        .map_err(UpdateError::BrokeOff)?;
    let data = unpack(body, kind)?;

    let dir = src.file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| UpdateError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let name = src
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("intel");
    let tmp = dir.join(format!(".{name}.download.{}", std::process::id()));
    let outcome = write_validate_rename(&tmp, &src.file, &data, src.skip_bad_lines, kind);
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
    kind: Kind,
) -> Result<(), UpdateError> {
    let cannot_write = |source| UpdateError::Write {
        file: tmp.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::create(tmp).map_err(cannot_write)?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(cannot_write)?;
    let mut problems = Problems::new();
    let valid = match kind {
        Kind::Crawler => super::crawlers::load_ranges(tmp, &mut problems).is_some(),
        Kind::IpList => {
            CidrSet::load_with(tmp, skip_bad, &mut problems).is_some_and(|(set, _)| !set.is_empty())
        }
        Kind::Database => Mmdb::open(tmp, &mut problems).is_some(),
        Kind::BotList => {
            return match super::ua::list::checked(&String::from_utf8_lossy(data)) {
                Ok(_) => rename(tmp, dest),
                Err(e) => Err(UpdateError::BadBotList(e)),
            }
        }
    };
    if !valid {
        return Err(if problems.is_empty() {
            UpdateError::EmptyList
        } else {
            UpdateError::Refused(problems)
        });
    }
    rename(tmp, dest)
}

fn rename(tmp: &Path, dest: &Path) -> Result<(), UpdateError> {
    std::fs::rename(tmp, dest).map_err(|source| UpdateError::Replace {
        file: dest.to_path_buf(),
        source,
    })
}

/// gzip and tar.gz (MaxMind's downloads) by their content, whatever the URL says.
fn unpack(body: Vec<u8>, kind: Kind) -> Result<Vec<u8>, UpdateError> {
    let body = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .map_err(UpdateError::Gzip)?;
        out
    } else {
        body
    };
    let is_tar = body.len() >= 512 && &body[257..262] == b"ustar";
    if !is_tar {
        return Ok(body);
    }
    let wanted = match kind {
        Kind::IpList => [".txt", ".csv", ".list"].as_slice(),
        Kind::BotList | Kind::Crawler => [".json", ".txt"].as_slice(),
        Kind::Database => [".mmdb"].as_slice(),
    };
    tar_member(&body, wanted).ok_or_else(|| UpdateError::NoMember(wanted.join("/")))
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
fn expand_env(url: &str) -> Result<String, UpdateError> {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find('}')
            .ok_or_else(|| UpdateError::UnclosedVariable(url.to_string()))?;
        let name = &rest[i + 2..i + end];
        let value =
            std::env::var(name).map_err(|_| UpdateError::UnsetVariable(name.to_string()))?;
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
        let unset = expand_env("https://x/?k=${FLOWGATE_NOT_SET_ANYWHERE}").unwrap_err();
        assert_eq!(
            unset.to_string(),
            "environment variable FLOWGATE_NOT_SET_ANYWHERE (in the url) is not set"
        );
        let unclosed = expand_env("https://x/?k=${KEY").unwrap_err();
        assert_eq!(
            unclosed.to_string(),
            "unclosed ${ in url \"https://x/?k=${KEY\""
        );
    }
}
