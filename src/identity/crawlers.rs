//! Verified crawlers: a user agent that claims a search engine's crawler is only believed when
//! the address is in the ranges that search engine publishes. Which user agents claim which
//! crawler is a small bundled table (search engines only); the ranges come from the files an
//! operator names in `intel.crawlers`, in the JSON layout Google and Bing publish or as plain
//! CIDR lists.

use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use super::{Cidr, CidrSet};
use crate::problem::{Problems, Span};

/// The crawlers flowgate knows by user agent: the name `intel.crawlers` keys them by, and the
/// tokens (ASCII case ignored) a user agent claiming it carries. Search engines only, each
/// with a published list of ranges or reverse-DNS verification documented by its operator.
pub const CLAIMS: &[(&str, &[&str])] = &[
    // developers.google.com/search/apis/ipranges/googlebot.json: the common crawlers.
    (
        "googlebot",
        &[
            "googlebot",
            "google-inspectiontool",
            "googleother",
            "storebot-google",
        ],
    ),
    // bing.com/toolbox/bingbot.json.
    ("bingbot", &["bingbot", "bingpreview", "msnbot", "adidxbot"]),
    // search.developer.apple.com/applebot.json.
    ("applebot", &["applebot"]),
    ("duckduckbot", &["duckduckbot"]),
    (
        "yandexbot",
        &["yandexbot", "yandeximages", "yandexmobilebot"],
    ),
    ("baiduspider", &["baiduspider"]),
];

/// The known names, for error messages.
pub fn names() -> String {
    CLAIMS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a visitor's user agent and address say about crawling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrawlerVerdict {
    /// The user agent claims no known crawler.
    #[default]
    None,
    /// It claims crawler `CLAIMS[i]`, and the address is not in that crawler's ranges (or
    /// none are configured).
    Claimed(u8),
    /// It claims crawler `CLAIMS[i]` from an address in its published ranges.
    Verified(u8),
}

impl CrawlerVerdict {
    pub const NAMES: &'static [&'static str] = &["verified", "claimed", "none"];

    /// A bit of the `crawler` condition's mask, by `NAMES`.
    pub fn bit(self) -> u8 {
        match self {
            CrawlerVerdict::Verified(_) => 1,
            CrawlerVerdict::Claimed(_) => 2,
            CrawlerVerdict::None => 4,
        }
    }

    /// `verified`, `claimed` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            CrawlerVerdict::Verified(_) => "verified",
            CrawlerVerdict::Claimed(_) => "claimed",
            CrawlerVerdict::None => "none",
        }
    }

    /// The crawler claimed, by its `intel.crawlers` name.
    pub fn name(self) -> Option<&'static str> {
        match self {
            CrawlerVerdict::Verified(i) | CrawlerVerdict::Claimed(i) => {
                CLAIMS.get(usize::from(i)).map(|(n, _)| *n)
            }
            CrawlerVerdict::None => None,
        }
    }
}

/// `verified googlebot`, `claimed googlebot` or `none`: what `explain` shows.
impl std::fmt::Display for CrawlerVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} {name}", self.as_str()),
            None => f.write_str("none"),
        }
    }
}

/// The claim table compiled, and the ranges loaded for each crawler.
#[derive(Debug, Clone)]
pub struct Crawlers {
    /// Every token of `CLAIMS` as one alternation of literals, which the regex engine runs as
    /// a literal search (no automaton walks the user agent).
    claims: Regex,
    /// `(token, index into CLAIMS)`: which crawler the matched text claims.
    tokens: Vec<(&'static str, u8)>,
    /// By index into `CLAIMS`; `None` when `intel.crawlers` names no file for it.
    ranges: Vec<Option<CidrSet>>,
}

impl Default for Crawlers {
    fn default() -> Self {
        let tokens: Vec<(&str, u8)> = (CLAIMS.iter().enumerate())
            .flat_map(|(i, (_, tokens))| tokens.iter().map(move |t| (*t, i as u8)))
            .collect();
        let alternation: Vec<String> = tokens.iter().map(|(t, _)| regex::escape(t)).collect();
        let claims = regex::RegexBuilder::new(&alternation.join("|"))
            .case_insensitive(true)
            .build()
            .expect("built-in crawler tokens compile");
        Crawlers {
            claims,
            tokens,
            ranges: vec![None; CLAIMS.len()],
        }
    }
}

impl Crawlers {
    /// Index into `CLAIMS` of a crawler name.
    pub fn index(name: &str) -> Option<usize> {
        CLAIMS.iter().position(|(n, _)| *n == name)
    }

    /// Ranges for crawler `CLAIMS[index]`.
    pub fn set_ranges(&mut self, index: usize, set: CidrSet) {
        if let Some(slot) = self.ranges.get_mut(index) {
            *slot = Some(set);
        }
    }

    /// Ranges loaded, as `(name, networks)`.
    pub fn loaded(&self) -> impl Iterator<Item = (&'static str, &CidrSet)> {
        (CLAIMS.iter().zip(&self.ranges)).filter_map(|((n, _), r)| r.as_ref().map(|r| (*n, r)))
    }

    /// The crawler a user agent claims, by index into `CLAIMS`: one literal search over it.
    /// Asked only of user agents the classifier took for bots, and cached beside their class.
    pub fn claim(&self, ua: &str) -> Option<u8> {
        let found = self.claims.find(ua)?.as_str();
        (self.tokens.iter())
            .find(|(t, _)| t.eq_ignore_ascii_case(found))
            .map(|&(_, index)| index)
    }

    /// The verdict on a claim from `ip`: verified only inside that crawler's ranges.
    pub fn verdict(&self, claim: Option<u8>, ip: std::net::IpAddr) -> CrawlerVerdict {
        let Some(index) = claim else {
            return CrawlerVerdict::None;
        };
        match self.ranges.get(usize::from(index)) {
            Some(Some(set)) if set.contains(ip) => CrawlerVerdict::Verified(index),
            Some(_) => CrawlerVerdict::Claimed(index),
            None => CrawlerVerdict::None,
        }
    }

    /// `verdict` of `claim`: what a user agent from `ip` is, uncached.
    pub fn judge(&self, ua: &str, ip: std::net::IpAddr) -> CrawlerVerdict {
        self.verdict(self.claim(ua), ip)
    }
}

/// The layout Google, Bing and Apple publish their crawlers' ranges in.
#[derive(Deserialize)]
struct Published {
    prefixes: Vec<Prefix>,
}

#[derive(Deserialize)]
struct Prefix {
    #[serde(rename = "ipv4Prefix")]
    v4: Option<String>,
    #[serde(rename = "ipv6Prefix")]
    v6: Option<String>,
}

/// A crawler's range file: the published JSON (`{"prefixes": [{"ipv4Prefix": ..}, ..]}`) when
/// it starts with `{`, else a CIDR list (one network per line, `#` comments). Every problem is
/// reported at its line, or for JSON at the prefix's field; an empty file is a problem too, as
/// it would make every claim of this crawler `claimed`.
pub fn load_ranges(path: &Path, problems: &mut Problems) -> Option<CidrSet> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("cannot read: {}", crate::problem::io_reason(&e));
            problems.push(path, Span::default(), "", msg);
            return None;
        }
    };
    let set = if text.trim_start().starts_with('{') {
        parse_published(path, &text, problems)?
    } else {
        CidrSet::load(path, problems)?
    };
    if set.is_empty() {
        problems.push(path, Span::default(), "", "no networks in the file");
        return None;
    }
    Some(set)
}

fn parse_published(path: &Path, text: &str, problems: &mut Problems) -> Option<CidrSet> {
    let published: Published = match serde_json::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            let span = Span {
                line: e.line(),
                column: e.column(),
            };
            let msg = format!("not a published range file ({{\"prefixes\": [..]}}): {e}");
            problems.push(path, span, "", msg);
            return None;
        }
    };
    let before = problems.len();
    let mut nets = Vec::with_capacity(published.prefixes.len());
    for (i, p) in published.prefixes.iter().enumerate() {
        let (key, value) = match (&p.v4, &p.v6) {
            (Some(v4), None) => ("ipv4Prefix", v4),
            (None, Some(v6)) => ("ipv6Prefix", v6),
            _ => {
                let field = format!("prefixes[{i}]");
                let msg = "needs one of ipv4Prefix or ipv6Prefix";
                problems.push(path, Span::default(), field, msg);
                continue;
            }
        };
        match value.parse::<Cidr>() {
            Ok(c) => nets.push(c),
            Err(e) => {
                let field = format!("prefixes[{i}].{key}");
                problems.push(path, Span::default(), field, e.to_string());
            }
        }
    }
    (problems.len() == before).then(|| CidrSet::new(nets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_claim_is_verified_only_from_the_crawlers_ranges() {
        let mut c = Crawlers::default();
        let google = Crawlers::index("googlebot").unwrap();
        c.set_ranges(google, CidrSet::new(["66.249.64.0/27".parse().unwrap()]));
        let ua = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        assert_eq!(c.judge(ua, ip("66.249.64.5")).as_str(), "verified");
        assert_eq!(c.judge(ua, ip("203.0.113.9")).as_str(), "claimed");
        assert_eq!(c.judge(ua, ip("203.0.113.9")).name(), Some("googlebot"));
        let bing = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)";
        assert_eq!(
            c.judge(bing, ip("66.249.64.5")),
            CrawlerVerdict::Claimed(1),
            "no ranges for bingbot: claimed from anywhere"
        );
        assert_eq!(
            c.judge("curl/8.5.0", ip("66.249.64.5")),
            CrawlerVerdict::None
        );
    }

    #[test]
    fn published_json_and_plain_lists_load_and_bad_ones_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("googlebot.json");
        std::fs::write(
            &json,
            r#"{"creationTime": "x", "prefixes": [{"ipv6Prefix": "2001:4860:4801:10::/64"}, {"ipv4Prefix": "66.249.64.0/27"}]}"#,
        )
        .unwrap();
        let mut problems = Problems::new();
        let set = load_ranges(&json, &mut problems).unwrap();
        assert!(set.contains(ip("66.249.64.31")) && !set.contains(ip("66.249.64.32")));
        assert!(set.contains(ip("2001:4860:4801:10::1")));
        std::fs::write(
            &json,
            r#"{"prefixes": [{"ipv4Prefix": "66.249.64.0/33"}, {}]}"#,
        )
        .unwrap();
        assert!(load_ranges(&json, &mut problems).is_none());
        let fields: Vec<String> = problems.iter().map(|p| p.field.clone()).collect();
        assert_eq!(fields, ["prefixes[0].ipv4Prefix", "prefixes[1]"]);
        let mut problems = Problems::new();
        std::fs::write(&json, "{\"prefixes\": [\n{\"ipv4Prefix\": 5}]}").unwrap();
        assert!(load_ranges(&json, &mut problems).is_none());
        assert_eq!(problems.iter().next().unwrap().span.line, 2);
        let list = dir.path().join("bingbot.txt");
        std::fs::write(&list, "# bing\n157.55.39.0/24\n").unwrap();
        let set = load_ranges(&list, &mut problems).unwrap();
        assert!(set.contains(ip("157.55.39.200")));
        std::fs::write(&list, "# nothing\n").unwrap();
        let mut problems = Problems::new();
        assert!(load_ranges(&list, &mut problems).is_none());
        assert!(problems.to_string().contains("no networks"), "{problems}");
    }
}
