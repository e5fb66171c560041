//! Bot pattern lists: the one built in (crawler-user-agents' patterns, MIT, see
//! `data/LICENSE-crawler-user-agents-MIT`) and the operator's `intel.bots.list` file, which
//! `flowgate intel update` fetches so new crawlers are caught without a new release. Two
//! layouts: a JSON array of `{"pattern": ...}` objects (crawler-user-agents.json) or of strings,
//! or text with one regex a line (`#` comments). Patterns are case-sensitive, as that list's are.

use std::path::Path;

use regex::{Regex, RegexBuilder};

/// The built-in list, one pattern a line.
const BUILT_IN: &str = include_str!("data/bots.txt");

/// Room for a few thousand patterns in the one alternation they are compiled into.
const SIZE_LIMIT: usize = 64 << 20;

/// One pattern and where it was written: a line of a text list, an entry of a JSON list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub at: String,
    pub regex: String,
}

/// The patterns of a list file's text; an unreadable layout is one error naming where.
pub fn parse(text: &str) -> Result<Vec<Pattern>, String> {
    if text.trim_start().starts_with('[') {
        let entries: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("not a JSON list: {e}"))?;
        return entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let regex = match e {
                    serde_json::Value::String(s) => Some(s.as_str()),
                    serde_json::Value::Object(o) => o.get("pattern").and_then(|p| p.as_str()),
                    _ => None,
                };
                let regex = regex.ok_or_else(|| {
                    format!(
                        "entry {}: neither a string nor an object with a \"pattern\" string",
                        i + 1
                    )
                })?;
                Ok(Pattern {
                    at: format!("entry {}", i + 1),
                    regex: regex.to_string(),
                })
            })
            .collect();
    }
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| Pattern {
            at: format!("line {}", i + 1),
            regex: l.to_string(),
        })
        .collect())
}

pub fn built_in() -> Vec<Pattern> {
    parse(BUILT_IN).unwrap_or_default()
}

/// Reads and compiles a list file; the error names the file and the place in it.
pub fn load(file: &Path) -> Result<Regex, String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "cannot read {}: {}",
            file.display(),
            crate::problem::io_reason(&e)
        )
    })?;
    checked(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// A list's text compiled, refused when it holds no pattern or one does not compile.
pub fn checked(text: &str) -> Result<Regex, String> {
    compile(&parse(text)?)?.ok_or_else(|| "the list holds no pattern".to_string())
}

/// All patterns as one alternation (one pass over the user agent, stopping at the first
/// match); when that fails, the first pattern to blame and where it is.
pub fn compile(patterns: &[Pattern]) -> Result<Option<Regex>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut all = String::new();
    for (i, p) in patterns.iter().enumerate() {
        if i > 0 {
            all.push('|');
        }
        all.push_str("(?:");
        all.push_str(&p.regex);
        all.push(')');
    }
    let build = |rx: &str| {
        RegexBuilder::new(rx)
            .size_limit(SIZE_LIMIT)
            .dfa_size_limit(super::DFA_CACHE)
            .build()
    };
    build(&all).map(Some).map_err(|whole| {
        patterns
            .iter()
            .find_map(|p| {
                build(&p.regex)
                    .err()
                    .map(|e| format!("{}: bad regex {:?}: {e}", p.at, p.regex))
            })
            .unwrap_or_else(|| format!("the patterns together do not compile: {whole}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_errors() {
        let json = r#"[{"pattern": "Googlebot\\/", "url": "x"}, "bingbot"]"#;
        let got: Vec<String> = parse(json).unwrap().into_iter().map(|p| p.regex).collect();
        assert_eq!(got, ["Googlebot\\/", "bingbot"]);
        let text = "# AI crawlers\nGPTBot\n\n  ClaudeBot  \n";
        let got = parse(text).unwrap();
        assert_eq!(
            (got[1].at.as_str(), got[1].regex.as_str()),
            ("line 4", "ClaudeBot")
        );
        assert!(parse("[{\"url\": 1}]")
            .unwrap_err()
            .starts_with("entry 1: "));
        let bad = parse("ok\n(unclosed\n").unwrap();
        assert!(compile(&bad)
            .unwrap_err()
            .starts_with("line 2: bad regex \"(unclosed\""));
        let built_in = built_in();
        assert!(built_in.len() > 1000, "{}", built_in.len());
        assert!(compile(&built_in)
            .unwrap()
            .unwrap()
            .is_match("Mozilla/5.0 (compatible; GPTBot/1.2)"));
    }
}
