//! `routes` (proxy, redirect, respond) and the `fallback` route.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::HeaderValue;

use super::{known_or_nearest, Compiler, Origin};
use crate::rules::model::{ProxySpec, RedirectSpec, RespondSpec, RouteSpec, RuleFile};
use crate::rules::template::Template;
use crate::rules::{Action, Route, RouteId};
use crate::yaml::At;

/// Route used when no `fallback` is configured.
const NOT_FOUND: &str = "not_found";

impl Compiler<'_> {
    pub(super) fn route(
        &mut self,
        name: &str,
        o: &Origin<RouteSpec>,
        upstreams: &HashMap<&str, usize>,
    ) -> Route {
        let field = format!("routes.{name}");
        let action = match &o.item.value {
            RouteSpec::Proxy(p) => self.proxy(o, &field, p, upstreams),
            RouteSpec::Redirect(r) => self.redirect(o.file, &field, r),
            RouteSpec::Respond(r) => self.respond(o.file, &field, r),
        };
        Route {
            name: name.to_string(),
            // Only ever served from a snapshot that failed to compile, which is never served.
            action: action.unwrap_or(Action::Respond {
                status: 500,
                body: Bytes::new(),
                content_type: HeaderValue::from_static("text/plain"),
            }),
        }
    }

    fn proxy(
        &mut self,
        o: &Origin<RouteSpec>,
        field: &str,
        p: &ProxySpec,
        upstreams: &HashMap<&str, usize>,
    ) -> Option<Action> {
        let path = p.path.as_ref().map_or("", |s| s.as_str());
        if !path.is_empty() {
            let span = p.path.as_ref().map_or(o.item.span, |s| s.span);
            if let Err(e) = super::campaigns::check_path_prefix(path) {
                self.problem(o.file, span, format!("{field}.proxy.path"), e.to_string());
            }
        }
        let Some(&upstream) = upstreams.get(p.upstream.as_str()) else {
            let msg = format!(
                "unknown upstream {:?}{}",
                p.upstream.value,
                known_or_nearest(&p.upstream, upstreams.keys())
            );
            self.problem(
                o.file,
                p.upstream.span,
                format!("{field}.proxy.upstream"),
                msg,
            );
            return None;
        };
        Some(Action::Proxy {
            upstream,
            path: path.trim_end_matches('/').to_string(),
        })
    }

    fn redirect(&mut self, file: &Path, field: &str, r: &RedirectSpec) -> Option<Action> {
        if ![301, 302, 303, 307, 308].contains(&r.status.value) {
            let msg = format!(
                "{} is not a redirect status (301, 302, 303, 307, 308)",
                r.status.value
            );
            self.problem(file, r.status.span, format!("{field}.redirect.status"), msg);
        }
        match Template::parse(&r.to) {
            Ok(to) => Some(Action::Redirect {
                to,
                status: r.status.value,
                keep_query: r.keep_query,
            }),
            Err(e) => {
                let to = format!("{field}.redirect.to");
                self.problem(file, r.to.span, to, e.to_string());
                None
            }
        }
    }

    fn respond(&mut self, file: &Path, field: &str, r: &RespondSpec) -> Option<Action> {
        let status = r.status.value;
        // A 1xx cannot end an exchange: the HTTP layer would answer 500 instead.
        if !(200..=599).contains(&status) {
            let msg = format!("{status} is not a final HTTP status (200 to 599)");
            self.problem(file, r.status.span, format!("{field}.respond.status"), msg);
        }
        let body = match (&r.body, &r.file) {
            (Some(_), Some(f)) => {
                self.problem(
                    file,
                    f.span,
                    format!("{field}.respond"),
                    "give body or file, not both",
                );
                return None;
            }
            (Some(b), None) => Bytes::from(b.clone()),
            (None, Some(f)) => self.body_file(file, field, f)?,
            (None, None) => Bytes::new(),
        };
        // The HTTP layer drops the body of these without a word.
        if matches!(status, 204 | 304) && !body.is_empty() {
            let msg = format!("a {status} response has no body; remove body/file");
            self.problem(file, r.status.span, format!("{field}.respond"), msg);
        }
        let content_type = match &r.content_type {
            Some(ct) => match HeaderValue::from_str(ct) {
                Ok(v) => v,
                Err(_) => {
                    self.problem(
                        file,
                        ct.span,
                        format!("{field}.respond.content_type"),
                        "not a valid header value",
                    );
                    return None;
                }
            },
            None => HeaderValue::from_static(guess_content_type(
                r.file.as_ref().map(|f| f.value.as_path()),
            )),
        };
        Some(Action::Respond {
            status,
            body,
            content_type,
        })
    }

    /// The body of a `respond.file`, relative to the rule file's folder.
    fn body_file(&mut self, file: &Path, field: &str, f: &At<PathBuf>) -> Option<Bytes> {
        let path = file.parent().unwrap_or(Path::new(".")).join(&f.value);
        match std::fs::read(&path) {
            Ok(b) => Some(Bytes::from(b)),
            Err(e) => {
                let msg = format!(
                    "cannot read {}: {}",
                    path.display(),
                    crate::problem::io_reason(&e)
                );
                self.problem(file, f.span, format!("{field}.respond.file"), msg);
                None
            }
        }
    }

    /// The `fallback` route; without one, a plain 404 (`not_found`, unless a route of that
    /// name is defined).
    pub(super) fn fallback(
        &mut self,
        files: &[(PathBuf, RuleFile)],
        routes: &mut Vec<Route>,
        index: &mut HashMap<String, RouteId>,
    ) -> RouteId {
        let mut chosen: Option<(&Path, &At<String>)> = None;
        for (file, f) in files {
            let Some(fb) = &f.fallback else { continue };
            if let Some((other, prev)) = chosen {
                let msg = format!(
                    "fallback is also set at {}:{}",
                    other.display(),
                    prev.span.line
                );
                self.problem(file, fb.span, "fallback", msg);
                continue;
            }
            chosen = Some((file, fb));
        }
        if let Some((file, fb)) = chosen {
            return match index.get(fb.as_str()) {
                Some(&r) => r,
                None => {
                    let msg = format!(
                        "unknown route {:?}{}",
                        fb.value,
                        known_or_nearest(&fb.value, index.keys())
                    );
                    self.problem(file, fb.span, "fallback", msg);
                    0
                }
            };
        }
        if let Some(&r) = index.get(NOT_FOUND) {
            return r;
        }
        routes.push(Route {
            name: NOT_FOUND.to_string(),
            action: Action::Respond {
                status: 404,
                body: Bytes::from_static(b"not found\n"),
                content_type: HeaderValue::from_static("text/plain; charset=utf-8"),
            },
        });
        index.insert(NOT_FOUND.to_string(), routes.len() - 1);
        routes.len() - 1
    }
}

fn guess_content_type(file: Option<&Path>) -> &'static str {
    match file.and_then(|f| f.extension()).and_then(|e| e.to_str()) {
        Some("txt") => "text/plain; charset=utf-8",
        Some("json") => "application/json",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("svg") => "image/svg+xml",
        _ => "text/html; charset=utf-8",
    }
}
