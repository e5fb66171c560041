//! `sources:` as operators write them. A map whose order matters: the first source whose
//! `match` holds is the click's.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::SecretSource;
use crate::rules::model::ConditionSpec;
use crate::yaml::{At, OneOrMany};

/// `name: { ... }` entries in the order written.
#[derive(Debug, Default)]
pub struct SourceSpecs(pub Vec<(String, At<SourceSpec>)>);

impl<'de> Deserialize<'de> for SourceSpecs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SourceSpecs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of source names to { match, params, hash, postback }")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<SourceSpecs, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry::<String, At<SourceSpec>>()? {
                    out.push(entry);
                }
                Ok(SourceSpecs(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Any condition; absent: every click (a catch-all, written last).
    #[serde(rename = "match", default)]
    pub matcher: Option<At<ConditionSpec>>,
    /// `event_field: url_param`: the click's params, taken from its URL.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Fields kept only as SHA-256 of their trimmed, lower-cased value.
    #[serde(default)]
    pub hash: Vec<At<String>>,
    #[serde(default)]
    pub postback: Option<At<SourcePostbackSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePostbackSpec {
    pub url: At<String>,
    /// `GET` (the default) or `POST`.
    #[serde(default)]
    pub method: Option<At<String>>,
    /// Values are templates, or secrets: `{ env: NAME }`, `{ file: path }`.
    #[serde(default)]
    pub headers: BTreeMap<String, At<SecretSource>>,
    /// A JSON body (POST only): a YAML map whose string values are templates.
    #[serde(default)]
    pub body: Option<At<serde_json::Value>>,
    /// The same as the source's `hash` (either place may name a field).
    #[serde(default)]
    pub hash: Vec<At<String>>,
    /// Conversion statuses forwarded; default: all.
    #[serde(default)]
    pub statuses: Option<At<OneOrMany<String>>>,
}
