//! Postback templates: a URL, a header value or a string of a JSON body, with `{macro}`s
//! naming the facts of one conversion (its click's, its source's params, its own). Parsed
//! once per snapshot against the names the source can fill; rendered per conversion,
//! percent-encoded in URLs and JSON-escaped in bodies.

use std::collections::BTreeMap;

/// The macros every source can fill, whatever its params.
pub const FIXED_MACROS: &[&str] = &[
    "click_id",
    "external_id",
    "payout",
    "currency",
    "status",
    "campaign",
    "flow",
    "conversion_id",
    "ts",
    "ts_unix",
    "datetime",
];

/// The macros whose values are numbers: alone in a body string, they render as JSON numbers.
const NUMERIC: &[&str] = &["payout", "ts_unix"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Macro(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroText {
    parts: Vec<Part>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MacroError {
    #[error("unclosed {{ in {0:?}")]
    Unclosed(String),
    #[error("unmatched }} in {0:?}")]
    Unmatched(String),
    #[error("unknown macro {{{name}}}; known: {known}")]
    Unknown { name: String, known: String },
    #[error("{0:?} holds a control character")]
    Control(String),
}

/// The values of one conversion's macros, by name. Absent names render as nothing.
pub type Facts = BTreeMap<String, String>;

impl MacroText {
    /// `known`: every macro name this text may use.
    pub fn parse(s: &str, known: &[&str]) -> Result<MacroText, MacroError> {
        if s.chars().any(char::is_control) {
            return Err(MacroError::Control(s.to_string()));
        }
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let (lit, after) = (&rest[..open], &rest[open + 1..]);
            if lit.contains('}') {
                return Err(MacroError::Unmatched(s.to_string()));
            }
            if !lit.is_empty() {
                parts.push(Part::Literal(lit.to_string()));
            }
            let close = after
                .find('}')
                .ok_or_else(|| MacroError::Unclosed(s.to_string()))?;
            let name = &after[..close];
            if !known.contains(&name) {
                return Err(MacroError::Unknown {
                    name: name.to_string(),
                    known: known.join(", "),
                });
            }
            parts.push(Part::Macro(name.to_string()));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(MacroError::Unmatched(s.to_string()));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(MacroText { parts })
    }

    /// The macro names this text uses.
    pub fn macros(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Macro(m) => Some(m.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// For a URL: every inserted value percent-encoded.
    pub fn render_url(&self, facts: &Facts) -> String {
        let mut out = String::with_capacity(128);
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Macro(m) => {
                    crate::url::percent_encode_into(&mut out, value(facts, m));
                }
            }
        }
        out
    }

    /// As text (a header value, or a body string before JSON escapes it).
    pub fn render_text(&self, facts: &Facts) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Macro(m) => out.push_str(value(facts, m)),
            }
        }
        out
    }

    /// For a JSON body: a string, except that a numeric macro standing alone becomes a
    /// number (`"{payout}"` → `12.5`), or `null` when the conversion has none.
    pub fn render_json(&self, facts: &Facts) -> serde_json::Value {
        if let [Part::Macro(m)] = self.parts.as_slice() {
            if NUMERIC.contains(&m.as_str()) {
                return match facts.get(m).and_then(|v| v.parse::<f64>().ok()) {
                    Some(n) => {
                        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, |n| match n
                            .as_f64()
                        {
                            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => {
                                serde_json::Value::from(f as i64)
                            }
                            _ => serde_json::Value::Number(n),
                        })
                    }
                    None => serde_json::Value::Null,
                };
            }
        }
        serde_json::Value::String(self.render_text(facts))
    }
}

fn value<'f>(facts: &'f Facts, name: &str) -> &'f str {
    facts.get(name).map_or("", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        [
            ("external_id", "a&b=c"),
            ("payout", "12.5"),
            ("ts_unix", "1700000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn url_values_are_percent_encoded_and_lone_numbers_stay_numbers() {
        let t = MacroText::parse(
            "https://x.example/c?id={external_id}&p={payout}",
            FIXED_MACROS,
        )
        .unwrap();
        assert_eq!(
            t.render_url(&facts()),
            "https://x.example/c?id=a%26b%3Dc&p=12.5"
        );
        let p = MacroText::parse("{payout}", FIXED_MACROS).unwrap();
        assert_eq!(p.render_json(&facts()), serde_json::json!(12.5));
        let t = MacroText::parse("{ts_unix}", FIXED_MACROS).unwrap();
        assert_eq!(t.render_json(&facts()), serde_json::json!(1_700_000_000));
        let s = MacroText::parse("v={payout}", FIXED_MACROS).unwrap();
        assert_eq!(s.render_json(&facts()), serde_json::json!("v=12.5"));
        let c = MacroText::parse("{currency}", FIXED_MACROS).unwrap();
        assert_eq!(c.render_json(&facts()), serde_json::json!(""));
    }

    #[test]
    fn unknown_and_unbalanced_macros_are_refused() {
        let e = MacroText::parse("x{nope}", FIXED_MACROS).unwrap_err();
        assert!(e.to_string().contains("unknown macro {nope}"), "{e}");
        assert!(MacroText::parse("x{payout", FIXED_MACROS).is_err());
        assert!(MacroText::parse("x}y{payout}", FIXED_MACROS).is_err());
        assert!(MacroText::parse("x\ny", FIXED_MACROS).is_err());
    }
}
