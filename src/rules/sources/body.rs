//! A postback's JSON body as the rule file writes it: a YAML map whose string values are
//! templates, every other value kept as written.

use super::template::{Facts, MacroError, MacroText};

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Fixed(serde_json::Value),
    Text(MacroText),
    List(Vec<Body>),
    Map(Vec<(String, Body)>),
}

/// Where in the body a template is wrong (`data[0].user_data.em`), and why.
#[derive(Debug)]
pub struct BodyError {
    pub at: String,
    pub error: MacroError,
}

impl Body {
    pub fn compile(v: &serde_json::Value, known: &[&str]) -> Result<Body, Vec<BodyError>> {
        let mut errors = Vec::new();
        let body = compile_at(v, known, String::new(), &mut errors);
        if errors.is_empty() {
            Ok(body)
        } else {
            Err(errors)
        }
    }

    pub fn render(&self, facts: &Facts) -> serde_json::Value {
        match self {
            Body::Fixed(v) => v.clone(),
            Body::Text(t) => t.render_json(facts),
            Body::List(items) => items.iter().map(|b| b.render(facts)).collect(),
            Body::Map(entries) => serde_json::Value::Object(
                (entries.iter())
                    .map(|(k, b)| (k.clone(), b.render(facts)))
                    .collect(),
            ),
        }
    }

    /// Every macro the body uses.
    pub fn macros(&self) -> Vec<&str> {
        match self {
            Body::Fixed(_) => Vec::new(),
            Body::Text(t) => t.macros().collect(),
            Body::List(items) => items.iter().flat_map(Body::macros).collect(),
            Body::Map(entries) => entries.iter().flat_map(|(_, b)| b.macros()).collect(),
        }
    }
}

fn compile_at(
    v: &serde_json::Value,
    known: &[&str],
    at: String,
    errors: &mut Vec<BodyError>,
) -> Body {
    match v {
        serde_json::Value::String(s) => match MacroText::parse(s, known) {
            Ok(t) => Body::Text(t),
            Err(error) => {
                errors.push(BodyError { at, error });
                Body::Fixed(serde_json::Value::Null)
            }
        },
        serde_json::Value::Array(items) => Body::List(
            (items.iter().enumerate())
                .map(|(i, x)| compile_at(x, known, format!("{at}[{i}]"), errors))
                .collect(),
        ),
        serde_json::Value::Object(m) => Body::Map(
            m.iter()
                .map(|(k, x)| {
                    let sub = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    (k.clone(), compile_at(x, known, sub, errors))
                })
                .collect(),
        ),
        other => Body::Fixed(other.clone()),
    }
}
