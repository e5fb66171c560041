//! `sources`: each source's match, params, hashed fields and postback, checked and compiled.
//! Names are unique across the rule files; their order (files in name order, then as
//! written) is the order clicks are matched in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Compiler;
use crate::config::SecretSource;
use crate::problem::Span;
use crate::rules::model::RuleFile;
use crate::rules::sources::model::{SourcePostbackSpec, SourceSpec};
use crate::rules::sources::{
    Body, HeaderText, MacroText, PostbackMethod, PostbackPlan, Source, FIXED_MACROS,
};
use crate::yaml::At;

/// Headers flowgate writes itself.
const OWN_HEADERS: &[&str] = &["host", "content-length", "transfer-encoding", "connection"];

impl Compiler<'_> {
    pub(super) fn sources(&mut self, files: &[(PathBuf, RuleFile)]) -> Vec<Source> {
        let mut seen: HashMap<&str, (&Path, usize)> = HashMap::new();
        let mut out = Vec::new();
        for (file, f) in files {
            for (name, spec) in &f.sources.0 {
                let field = format!("sources.{name}");
                if let Some((other, line)) = seen.get(name.as_str()) {
                    let msg = format!("{name:?} is also defined at {}:{line}", other.display());
                    self.problem(file, spec.span, field, msg);
                    continue;
                }
                seen.insert(name, (file, spec.span.line));
                if !is_field_name(name) {
                    let msg =
                        "a source name is letters, digits, `_` and `-` (it is a metric label)";
                    self.problem(file, spec.span, field.clone(), msg);
                }
                out.extend(self.source(file, &field, name, spec));
            }
        }
        out
    }

    fn source(
        &mut self,
        file: &Path,
        field: &str,
        name: &str,
        spec: &At<SourceSpec>,
    ) -> Option<Source> {
        let before = self.problems.len();
        let condition = spec
            .matcher
            .as_ref()
            .map(|m| self.condition(file, &format!("{field}.match"), m));
        for (event_field, param) in &spec.params {
            let f = format!("{field}.params.{event_field}");
            if !is_field_name(event_field) {
                self.problem(
                    file,
                    spec.span,
                    f,
                    "an event field is letters, digits, `_` and `-`",
                );
            } else if event_field != "external_id" && FIXED_MACROS.contains(&event_field.as_str()) {
                let msg =
                    format!("{{{event_field}}} is flowgate's own macro; name the field otherwise");
                self.problem(file, spec.span, f, msg);
            } else if param.is_empty() {
                self.problem(file, spec.span, f, "names no URL parameter");
            }
        }
        let pb_hash = spec.postback.iter().flat_map(|p| &p.hash);
        let mut hash: Vec<String> = Vec::new();
        for h in spec.hash.iter().chain(pb_hash) {
            if !is_field_name(h) {
                let msg = format!("{:?} is not a field name", h.value);
                self.problem(file, h.span, format!("{field}.hash"), msg);
            } else if FIXED_MACROS.contains(&h.as_str()) && h.as_str() != "external_id" {
                let msg = format!(
                    "{:?} is flowgate's own field; only params and conversion extras are hashed",
                    h.value
                );
                self.problem(file, h.span, format!("{field}.hash"), msg);
            } else if !hash.contains(&h.value) {
                hash.push(h.value.clone());
            }
        }
        let mut known: Vec<&str> = FIXED_MACROS.to_vec();
        known.extend(spec.params.keys().map(String::as_str));
        known.extend(hash.iter().map(String::as_str));
        known.sort_unstable();
        known.dedup();
        let postback = (spec.postback.as_ref())
            .map(|pb| self.postback(file, &format!("{field}.postback"), pb, &known));
        if self.problems.len() != before {
            return None;
        }
        Some(Source {
            name: Arc::from(name),
            condition: condition.flatten(),
            params: spec
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            hash,
            postback: postback.flatten(),
        })
    }

    fn postback(
        &mut self,
        file: &Path,
        field: &str,
        pb: &At<SourcePostbackSpec>,
        known: &[&str],
    ) -> Option<PostbackPlan> {
        let before = self.problems.len();
        let url = match MacroText::parse(&pb.url, known) {
            Ok(t) if pb.url.starts_with("https://") || pb.url.starts_with("http://") => Some(t),
            Ok(_) => {
                self.problem(
                    file,
                    pb.url.span,
                    format!("{field}.url"),
                    "must be an http(s) URL",
                );
                None
            }
            Err(e) => {
                self.problem(file, pb.url.span, format!("{field}.url"), e.to_string());
                None
            }
        };
        let method = match pb.method.as_ref().map(|m| m.to_ascii_uppercase()) {
            None => PostbackMethod::Get,
            Some(m) if m == "GET" => PostbackMethod::Get,
            Some(m) if m == "POST" => PostbackMethod::Post,
            Some(m) => {
                let span = pb.method.as_ref().map_or(pb.span, |m| m.span);
                let msg = format!("{m:?}: must be GET or POST");
                self.problem(file, span, format!("{field}.method"), msg);
                PostbackMethod::Get
            }
        };
        let body = match &pb.body {
            Some(b) if method != PostbackMethod::Post => {
                let msg = "a body is sent only with `method: POST`";
                self.problem(file, b.span, format!("{field}.body"), msg);
                None
            }
            Some(b) if !b.is_object() => {
                self.problem(
                    file,
                    b.span,
                    format!("{field}.body"),
                    "must be a map (a JSON object)",
                );
                None
            }
            Some(b) => match Body::compile(b, known) {
                Ok(body) => Some(body),
                Err(errors) => {
                    for e in errors {
                        self.problem(
                            file,
                            b.span,
                            format!("{field}.body.{}", e.at),
                            e.error.to_string(),
                        );
                    }
                    None
                }
            },
            None => None,
        };
        let headers = self.headers(file, field, pb, known);
        let statuses = pb.statuses.as_ref().map(|s| s.0.clone());
        if let Some(s) = &pb.statuses {
            if s.0.is_empty() || s.0.iter().any(|x| x.trim().is_empty()) {
                let msg = "lists conversion statuses (`[approved]`); leave it out to forward all";
                self.problem(file, s.span, format!("{field}.statuses"), msg);
            }
        }
        if self.problems.len() != before {
            return None;
        }
        Some(PostbackPlan {
            method,
            url: url?,
            headers,
            body,
            statuses,
        })
    }

    fn headers(
        &mut self,
        file: &Path,
        field: &str,
        pb: &SourcePostbackSpec,
        known: &[&str],
    ) -> Vec<(http::HeaderName, HeaderText)> {
        let mut out = Vec::new();
        for (name, value) in &pb.headers {
            let f = format!("{field}.headers.{name}");
            let Ok(header) = http::HeaderName::from_bytes(name.as_bytes()) else {
                self.problem(file, value.span, f, "is not a header name");
                continue;
            };
            if OWN_HEADERS.contains(&header.as_str()) {
                self.problem(file, value.span, f, "flowgate sets this header itself");
                continue;
            }
            let text = match &value.value {
                SecretSource::Value(t) => MacroText::parse(t, known)
                    .map(HeaderText::Template)
                    .map_err(|e| e.to_string()),
                secret => secret_value(file, secret, value.span),
            };
            match text {
                Ok(t) => out.push((header, t)),
                Err(msg) => self.problem(file, value.span, f, msg),
            }
        }
        out
    }
}

/// A secret header's value, read now; a `file:` path is relative to the rule file's folder.
fn secret_value(file: &Path, secret: &SecretSource, _: Span) -> Result<HeaderText, String> {
    let secret = match secret {
        SecretSource::File { file: path } if path.is_relative() => SecretSource::File {
            file: file.parent().unwrap_or(Path::new(".")).join(path),
        },
        other => other.clone(),
    };
    let v = secret.resolve().map_err(|e| e.to_string())?;
    let mut v = http::HeaderValue::from_str(&v)
        .map_err(|_| "the secret holds characters a header value may not".to_string())?;
    v.set_sensitive(true);
    Ok(HeaderText::Secret(v))
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
