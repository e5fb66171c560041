//! `intel:` in `flowgate.yaml`: the databases and lists visitors are looked up in. Owned here,
//! beside the loaders that read them; `config` only embeds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Anonymous, Error, UaClassifier, MAX_LISTS};
use crate::problem::{Problems, Span};
use crate::yaml::At;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntelConfig {
    pub country: Option<At<DataSource>>,
    pub city: Option<At<DataSource>>,
    pub asn: Option<At<DataSource>>,
    pub anonymous: Option<At<DataSource>>,
    /// Named CIDR list files, referenced by `ip_list` conditions.
    #[serde(default)]
    pub lists: BTreeMap<String, At<DataSource>>,
    /// Published ranges of search-engine crawlers, by the names of `crawlers::CLAIMS`.
    #[serde(default)]
    pub crawlers: BTreeMap<String, At<DataSource>>,
    #[serde(default)]
    pub bots: BotsConfig,
    /// User agents whose classification is remembered; 0 turns the cache off.
    #[serde(default = "default_ua_cache")]
    pub ua_cache: usize,
    /// `bots` with the built-in patterns, compiled by `validate` and only cloned after.
    #[serde(skip)]
    ua: Option<UaClassifier>,
    /// The config file this came from, set by `validate`: a data file that cannot be read is
    /// a problem of the config key naming it.
    #[serde(skip)]
    pub(super) config_file: Option<PathBuf>,
}

impl Default for IntelConfig {
    fn default() -> Self {
        IntelConfig {
            country: None,
            city: None,
            asn: None,
            anonymous: None,
            lists: BTreeMap::new(),
            crawlers: BTreeMap::new(),
            bots: BotsConfig::default(),
            ua_cache: default_ua_cache(),
            ua: None,
            config_file: None,
        }
    }
}

impl IntelConfig {
    /// A data file's problem: at the config key naming it when the config file is known,
    /// else at the data file.
    pub(super) fn push(
        &self,
        problems: &mut Problems,
        key: &str,
        src: &At<DataSource>,
        msg: String,
    ) {
        match &self.config_file {
            Some(f) => problems.push(f, src.span, key, msg),
            None => problems.push(&src.file, Span::default(), "", msg),
        }
    }

    /// Every data source with its config key, databases first.
    pub fn sources(&self) -> impl Iterator<Item = (String, &At<DataSource>)> {
        [
            ("country", &self.country),
            ("city", &self.city),
            ("asn", &self.asn),
            ("anonymous", &self.anonymous),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.as_ref().map(|s| (format!("intel.{k}"), s)))
        .chain(
            self.lists
                .iter()
                .map(|(k, s)| (format!("intel.lists.{k}"), s)),
        )
        .chain(
            self.crawlers
                .iter()
                .map(|(k, s)| (format!("intel.crawlers.{k}"), s)),
        )
        .chain(
            self.bots
                .list
                .iter()
                .map(|s| ("intel.bots.list".to_string(), s)),
        )
    }
}

/// The operator's own user-agent patterns (regexes, case-insensitive).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotsConfig {
    /// More clients to treat as bots.
    #[serde(default)]
    pub add: Vec<String>,
    /// Clients to treat as human whatever else matches (your own monitoring, say).
    #[serde(default)]
    pub allow: Vec<String>,
    /// A bot pattern list (JSON or text) in place of the built-in one; until its file exists
    /// (before the first `flowgate intel update`), the built-in list serves.
    #[serde(default)]
    pub list: Option<At<DataSource>>,
}

/// A data file: a path, or `{ file, url, anonymous, skip_bad_lines }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSource {
    pub file: PathBuf,
    /// Where `flowgate intel update` fetches it from.
    pub url: Option<String>,
    /// For lists: membership also counts as this anonymity flag (`tor`, `vpn`, ...).
    pub anonymous: Option<String>,
    /// For lists: skip unparsable lines (counted) instead of refusing the file.
    pub skip_bad_lines: bool,
}

impl<'de> Deserialize<'de> for DataSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            file: PathBuf,
            #[serde(default)]
            url: Option<String>,
            #[serde(default)]
            anonymous: Option<String>,
            #[serde(default)]
            skip_bad_lines: bool,
        }
        // By hand rather than `untagged`, so a wrong key is named instead of "did not match
        // any variant".
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DataSource;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a path or { file, url, anonymous, skip_bad_lines }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DataSource, E> {
                Ok(DataSource {
                    file: PathBuf::from(v),
                    url: None,
                    anonymous: None,
                    skip_bad_lines: false,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<DataSource, A::Error> {
                let f = Full::deserialize(serde::de::value::MapAccessDeserializer::new(m))?;
                Ok(DataSource {
                    file: f.file,
                    url: f.url,
                    anonymous: f.anonymous,
                    skip_bad_lines: f.skip_bad_lines,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl IntelConfig {
    /// Every problem of the `intel:` section; `file` is the config file it came from. The bot
    /// patterns are compiled here, once, and kept.
    pub fn validate(&mut self, file: &Path, problems: &mut Problems) {
        self.config_file = Some(file.to_path_buf());
        if self.lists.len() > MAX_LISTS {
            let msg = format!("at most {MAX_LISTS} lists");
            problems.push(file, Span::default(), "intel.lists", msg);
        }
        for (name, src) in &self.crawlers {
            if super::crawlers::Crawlers::index(name).is_none() {
                let hint = match crate::suggest::did_you_mean(name, &crawler_names()) {
                    h if h.is_empty() => format!("; known: {}", super::crawlers::names()),
                    h => h,
                };
                let msg = format!(
                    "unknown crawler {name:?} (flowgate knows search engines' user agents){hint}"
                );
                problems.push(file, src.span, format!("intel.crawlers.{name}"), msg);
            }
        }
        for (key, src) in self.sources() {
            let is_list = key.starts_with("intel.lists.");
            if key == "intel.bots.list" && (src.anonymous.is_some() || src.skip_bad_lines) {
                let msg = "anonymous and skip_bad_lines are for IP lists, not bot lists";
                problems.push(file, src.span, key.clone(), msg);
            } else if !is_list && (src.anonymous.is_some() || src.skip_bad_lines) {
                let msg = "anonymous and skip_bad_lines are for lists, not databases or crawlers";
                problems.push(file, src.span, key.clone(), msg);
            }
            if let Some(kind) = src
                .anonymous
                .as_deref()
                .filter(|k| !Anonymous::NAMES.contains(k))
            {
                let msg = format!(
                    "anonymous: {kind:?} is not one of {}",
                    Anonymous::NAMES.join(", ")
                );
                problems.push(file, src.span, key.clone(), msg);
            }
            if let Some(url) = src
                .url
                .as_deref()
                .filter(|u| !(u.starts_with("http://") || u.starts_with("https://")))
            {
                problems.push(
                    file,
                    src.span,
                    key,
                    format!("url {url:?} must be http:// or https://"),
                );
            }
        }
        self.ua = self.bots.compile(file, problems);
    }

    /// The user-agent classifier with the operator's patterns, as `validate` compiled it. A
    /// config that never went through `validate` (a test's default) has it compiled here,
    /// its problems reported as for a config file named `intel.bots`.
    pub fn classifier(&self, problems: &mut Problems) -> UaClassifier {
        if let Some(src) = self.bots.list.as_ref().filter(|s| s.file.exists()) {
            // Read at every snapshot build, so an updated list serves after the reload;
            // a bad one is this snapshot's problem and the serving one stays.
            return match super::ua::list::load(&src.file) {
                Ok(list) => self
                    .bots
                    .compile_with(Some(list), Path::new("intel.bots"), problems),
                Err(e) => {
                    self.push(problems, "intel.bots.list", src, e);
                    None
                }
            }
            .unwrap_or_default();
        }
        match &self.ua {
            Some(ua) => ua.clone(),
            None => self
                .bots
                .compile(Path::new("intel.bots"), problems)
                .unwrap_or_default(),
        }
    }
}

impl BotsConfig {
    /// The built-in patterns plus these; each one that does not compile is a problem.
    fn compile(&self, file: &Path, problems: &mut Problems) -> Option<UaClassifier> {
        self.compile_with(super::ua::built_in_list(), file, problems)
    }

    fn compile_with(
        &self,
        list: Option<regex::Regex>,
        file: &Path,
        problems: &mut Problems,
    ) -> Option<UaClassifier> {
        let errors = match UaClassifier::with_list(&self.add, &self.allow, list) {
            Ok(ua) => return Some(ua),
            Err(errors) => errors,
        };
        for e in errors {
            let key = match &e {
                Error::Pattern { key, .. } => *key,
                _ => "intel.bots",
            };
            problems.push(file, Span::default(), key, e.to_string());
        }
        None
    }
}

fn crawler_names() -> Vec<&'static str> {
    super::crawlers::CLAIMS.iter().map(|(n, _)| *n).collect()
}

fn default_ua_cache() -> usize {
    65_536
}
