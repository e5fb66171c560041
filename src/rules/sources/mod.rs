//! `sources:` compiled: where traffic comes from (the first source whose `match` holds for
//! a click), which click URL parameters become the click's `params`, which of them are
//! hashed the moment they are read, and where the source wants its conversions back.

pub mod body;
pub mod model;
pub mod template;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::condition::Condition;
use super::request::RequestFacts;
use crate::identity::Visitor;
pub use body::Body;
pub use template::{Facts, MacroError, MacroText, FIXED_MACROS};

pub struct Source {
    pub name: Arc<str>,
    /// `None`: every click (a catch-all source, last in the list).
    pub condition: Option<Condition>,
    /// `(event field, click URL parameter)`, in the order written.
    pub params: Vec<(String, String)>,
    /// Event fields (of `params`, or extra parameters of a conversion postback) kept only
    /// as the SHA-256 of their normalised value.
    pub hash: Vec<String>,
    pub postback: Option<PostbackPlan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostbackMethod {
    Get,
    Post,
}

/// How one source is told of a conversion.
pub struct PostbackPlan {
    pub method: PostbackMethod,
    pub url: MacroText,
    /// Templates, or secrets read when the snapshot was built (never logged).
    pub headers: Vec<(http::HeaderName, HeaderText)>,
    pub body: Option<Body>,
    /// Conversion statuses forwarded; `None`: all of them.
    pub statuses: Option<Vec<String>>,
}

pub enum HeaderText {
    Template(MacroText),
    Secret(http::HeaderValue),
}

/// One request to a source, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub method: PostbackMethod,
    pub url: String,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: Option<Vec<u8>>,
}

impl PostbackPlan {
    /// Whether a conversion of this status goes to the source.
    pub fn forwards(&self, status: Option<&str>) -> bool {
        match &self.statuses {
            None => true,
            Some(list) => status.is_some_and(|s| list.iter().any(|w| w.eq_ignore_ascii_case(s))),
        }
    }

    pub fn render(&self, facts: &Facts) -> Rendered {
        let headers = (self.headers.iter())
            .filter_map(|(name, text)| {
                let value = match text {
                    HeaderText::Secret(v) => v.clone(),
                    // A rendered value that is no header value (a control character from a
                    // fact) is left out rather than sent broken.
                    HeaderText::Template(t) => {
                        http::HeaderValue::from_str(&t.render_text(facts)).ok()?
                    }
                };
                Some((name.clone(), value))
            })
            .collect();
        Rendered {
            method: self.method,
            url: self.url.render_url(facts),
            headers,
            body: self
                .body
                .as_ref()
                .map(|b| serde_json::to_vec(&b.render(facts)).unwrap_or_default()),
        }
    }
}

impl Source {
    pub fn matches(&self, visitor: &Visitor, req: &RequestFacts) -> bool {
        self.condition.as_ref().is_none_or(|c| c.eval(visitor, req))
    }

    pub fn hashes(&self, field: &str) -> bool {
        self.hash.iter().any(|h| h == field)
    }

    /// The click's params from its URL: hashed fields hashed here, so their clear values
    /// go no further than this call.
    pub fn params_of(&self, req: &RequestFacts) -> Vec<(Box<str>, String)> {
        (self.params.iter())
            .filter_map(|(field, param)| {
                let v = req.param(param)?;
                let v = if self.hashes(field) {
                    hash_value(&v)?
                } else {
                    v.into_owned()
                };
                Some((Box::from(field.as_str()), v))
            })
            .collect()
    }
}

/// Hashed fields whose URL parameter `keeps` (`privacy.query_params`: names, a trailing `*`
/// for a prefix) would keep in clear in events and the store: `(source, parameter)`.
pub fn kept_in_clear<'r>(sources: &'r [Source], keeps: &[String]) -> Vec<(&'r str, &'r str)> {
    let kept = |name: &str| {
        keeps.iter().any(|k| match k.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == k,
        })
    };
    (sources.iter())
        .flat_map(|s| {
            (s.params.iter())
                .filter(|(field, param)| s.hashes(field) && kept(param))
                .map(|(_, param)| (&*s.name, param.as_str()))
        })
        .collect()
}

/// The lower-case hex SHA-256 of a value trimmed and lower-cased (what Meta's Conversions API
/// and TikTok's Events API take as user data); `None` for a value that is empty once trimmed.
pub fn hash_value(v: &str) -> Option<String> {
    let v = v.trim().to_lowercase();
    if v.is_empty() {
        return None;
    }
    let digest = Sha256::digest(v.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashing_normalises_first() {
        // sha256("test@example.com")
        let want = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b";
        assert_eq!(
            super::hash_value("  Test@Example.COM ").as_deref(),
            Some(want)
        );
        assert_eq!(super::hash_value("   "), None);
    }
}
