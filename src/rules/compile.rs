//! Loads every rule file in the rules folder, checks names across files, and compiles the
//! result. All problems are collected; nothing is compiled from a folder that has any.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use regex::Regex;

use super::condition::{Condition, CountrySet, PathMatch, Presence, Schedule, WEEKDAYS};
use super::model::*;
use super::template::Template;
use super::*;
use crate::identity::{Anonymous, Browser, Cidr, CidrSet, CountryCode, Device, Intel, Os};
use crate::problem::{Problems, Span};
use crate::yaml::At;

/// Route used when no `fallback` is configured.
const NOT_FOUND: &str = "not_found";

/// The rule files of a folder, sorted by name. `tests/` holds rule tests, not rules.
pub fn rule_files(dir: &Path, problems: &mut Problems) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(
                dir,
                Span::default(),
                "",
                format!("cannot read rules folder: {e}"),
            );
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

pub fn load(dir: &Path, intel: &Intel) -> Result<Rules, Problems> {
    let mut problems = Problems::new();
    let mut parsed = Vec::new();
    for path in rule_files(dir, &mut problems) {
        match std::fs::read_to_string(&path) {
            Err(e) => problems.push(&path, Span::default(), "", format!("cannot read: {e}")),
            // Most likely a file caught mid-write (truncated, not yet filled): serving "no
            // rules" from it would send every visitor to the fallback.
            Ok(text) if is_blank_yaml(&text) => problems.push(
                &path,
                Span::default(),
                "",
                "empty rule file (write `{}` if it is meant to be empty)",
            ),
            Ok(text) => match crate::yaml::parse::<RuleFile>(&text) {
                Ok(f) => parsed.push((path, f)),
                Err(e) => problems.push_yaml(&path, &e),
            },
        }
    }
    if parsed.is_empty() && problems.is_empty() {
        problems.push(
            dir,
            Span::default(),
            "",
            "no rule files (*.yaml) in the rules folder",
        );
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let rules = Compiler {
        problems: &mut problems,
        intel,
        rates: HashMap::new(),
    }
    .compile(&parsed);
    problems.into_result(rules)
}

struct Compiler<'a> {
    problems: &'a mut Problems,
    intel: &'a Intel,
    /// `per: ip` limiters by `(max, window)`: one count per visitor across the rules.
    rates: HashMap<(u32, Duration), std::sync::Arc<super::rate::RateLimiter>>,
}

/// Where a named thing was defined, for "defined twice" messages.
struct Origin<'f, T> {
    file: &'f Path,
    item: &'f At<T>,
}

impl Compiler<'_> {
    fn problem(
        &mut self,
        file: &Path,
        span: Span,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.problems.push(file, span, field, msg);
    }

    fn compile(&mut self, files: &[(PathBuf, RuleFile)]) -> Rules {
        let upstream_specs = self.gather(files, "upstreams", |f| &f.upstreams);
        let route_specs = self.gather(files, "routes", |f| &f.routes);

        let upstream_index: HashMap<&str, usize> = upstream_specs
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let upstreams = upstream_specs
            .iter()
            .map(|(name, o)| self.upstream(name, o))
            .collect();

        let mut routes: Vec<Route> = route_specs
            .iter()
            .map(|(name, o)| self.route(name, o, &upstream_index))
            .collect();
        let mut route_index: HashMap<String, RouteId> = routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();

        let fallback = self.fallback(files, &mut routes, &mut route_index);

        let mut campaigns = Vec::new();
        let mut seen_ids: HashMap<String, (&Path, Span)> = HashMap::new();
        let mut seen_matches: HashMap<(String, String), String> = HashMap::new();
        for (file, f) in files {
            for spec in &f.campaigns {
                let field = format!("campaigns[{}]", spec.id.value);
                if let Some((other, span)) = seen_ids.get(spec.id.as_str()) {
                    let msg = format!(
                        "campaign id {:?} is also used at {}:{}",
                        spec.id.value,
                        other.display(),
                        span.line
                    );
                    self.problem(file, spec.id.span, field.clone(), msg);
                }
                seen_ids.insert(spec.id.value.clone(), (file.as_path(), spec.id.span));
                for host in &spec.matcher.host.0 {
                    let key = (
                        host.to_ascii_lowercase(),
                        spec.matcher.path_prefix.value.clone(),
                    );
                    if let Some(other) = seen_matches.insert(key, spec.id.value.clone()) {
                        if other != spec.id.value {
                            let msg = format!(
                                "campaign {other:?} already matches host {host:?} and path_prefix {:?}",
                                spec.matcher.path_prefix.value
                            );
                            self.problem(
                                file,
                                spec.matcher.host.span,
                                format!("{field}.match"),
                                msg,
                            );
                        }
                    }
                }
                if let Some(c) = self.campaign(file, spec, &route_index) {
                    campaigns.push(c);
                }
            }
        }

        Rules {
            upstreams,
            routes,
            campaigns,
            fallback,
        }
    }

    /// Merges one named section across files; a name defined twice is a problem.
    fn gather<'f, T>(
        &mut self,
        files: &'f [(PathBuf, RuleFile)],
        section: &str,
        get: impl Fn(&'f RuleFile) -> &'f BTreeMap<String, At<T>>,
    ) -> BTreeMap<String, Origin<'f, T>> {
        let mut out: BTreeMap<String, Origin<'f, T>> = BTreeMap::new();
        for (file, f) in files {
            for (name, item) in get(f) {
                if let Some(prev) = out.get(name) {
                    let msg = format!(
                        "{name:?} is also defined at {}:{}",
                        prev.file.display(),
                        prev.item.span.line
                    );
                    self.problem(file, item.span, format!("{section}.{name}"), msg);
                    continue;
                }
                if name.is_empty() {
                    self.problem(file, item.span, section, "a name cannot be empty");
                }
                out.insert(name.clone(), Origin { file, item });
            }
        }
        out
    }

    fn upstream(&mut self, name: &str, o: &Origin<UpstreamSpec>) -> Upstream {
        let spec = &o.item.value;
        let field = format!("upstreams.{name}");
        if spec.peers.is_empty() {
            self.problem(
                o.file,
                o.item.span,
                format!("{field}.peers"),
                "needs at least one peer",
            );
        }
        let mut peers = Vec::new();
        let mut first_host = None;
        for p in &spec.peers {
            match resolve_peer(p) {
                Ok(addrs) => peers.extend(addrs),
                Err(e) => self.problem(o.file, p.span, format!("{field}.peers"), e),
            }
            first_host.get_or_insert_with(|| p.rsplit_once(':').map_or(p.as_str(), |(h, _)| h));
        }
        let sni = spec
            .sni
            .clone()
            .or_else(|| spec.host.clone())
            .or_else(|| first_host.map(|h| h.trim_matches(['[', ']']).to_string()))
            .unwrap_or_default();
        if let Some(h) = &spec.host {
            if HeaderValue::from_str(h).is_err() || h.is_empty() {
                self.problem(
                    o.file,
                    o.item.span,
                    format!("{field}.host"),
                    format!("{h:?} is not a valid host"),
                );
            }
        }
        Upstream {
            name: name.to_string(),
            peers,
            host: spec
                .host
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok()),
            tls: spec.tls,
            sni,
            connect_timeout: spec.connect_timeout.0,
            read_timeout: spec.read_timeout.0,
            next: AtomicUsize::new(0),
        }
    }

    fn route(
        &mut self,
        name: &str,
        o: &Origin<RouteSpec>,
        upstreams: &HashMap<&str, usize>,
    ) -> Route {
        let field = format!("routes.{name}");
        let placeholder = Action::Respond {
            status: 500,
            body: Bytes::new(),
            content_type: HeaderValue::from_static("text/plain"),
        };
        let action = match &o.item.value {
            RouteSpec::Proxy(p) => match upstreams.get(p.upstream.as_str()) {
                Some(&upstream) => {
                    let path = p.path.as_ref().map_or("", |s| s.as_str());
                    if !path.is_empty() && !path.starts_with('/') {
                        let span = p.path.as_ref().map_or(o.item.span, |s| s.span);
                        self.problem(
                            o.file,
                            span,
                            format!("{field}.proxy.path"),
                            "must start with /",
                        );
                    }
                    Action::Proxy {
                        upstream,
                        path: path.trim_end_matches('/').to_string(),
                    }
                }
                None => {
                    let msg = format!(
                        "unknown upstream {:?}{}",
                        p.upstream.value,
                        known(upstreams.keys())
                    );
                    self.problem(
                        o.file,
                        p.upstream.span,
                        format!("{field}.proxy.upstream"),
                        msg,
                    );
                    placeholder
                }
            },
            RouteSpec::Redirect(r) => {
                if ![301, 302, 303, 307, 308].contains(&r.status.value) {
                    let msg = format!(
                        "{} is not a redirect status (301, 302, 303, 307, 308)",
                        r.status.value
                    );
                    self.problem(
                        o.file,
                        r.status.span,
                        format!("{field}.redirect.status"),
                        msg,
                    );
                }
                match Template::parse(&r.to) {
                    Ok(to) => Action::Redirect {
                        to,
                        status: r.status.value,
                        keep_query: r.keep_query,
                    },
                    Err(e) => {
                        self.problem(o.file, r.to.span, format!("{field}.redirect.to"), e);
                        placeholder
                    }
                }
            }
            RouteSpec::Respond(r) => self.respond(o.file, &field, r).unwrap_or(placeholder),
        };
        Route {
            name: name.to_string(),
            action,
        }
    }

    fn respond(&mut self, file: &Path, field: &str, r: &RespondSpec) -> Option<Action> {
        if !(100..=599).contains(&r.status.value) {
            let msg = format!("{} is not an HTTP status", r.status.value);
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
            (None, Some(f)) => {
                let path = file.parent().unwrap_or(Path::new(".")).join(&f.value);
                match std::fs::read(&path) {
                    Ok(b) => Bytes::from(b),
                    Err(e) => {
                        let msg = format!("cannot read {}: {e}", path.display());
                        self.problem(file, f.span, format!("{field}.respond.file"), msg);
                        return None;
                    }
                }
            }
            (None, None) => Bytes::new(),
        };
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
            status: r.status.value,
            body,
            content_type,
        })
    }

    fn fallback(
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
                    let msg = format!("unknown route {:?}{}", fb.value, known(index.keys()));
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

    fn campaign(
        &mut self,
        file: &Path,
        spec: &CampaignSpec,
        routes: &HashMap<String, RouteId>,
    ) -> Option<Campaign> {
        let field = format!("campaigns[{}]", spec.id.value);
        let before = self.problems.len();
        if spec.id.is_empty() {
            self.problem(file, spec.id.span, format!("{field}.id"), "cannot be empty");
        }
        let mut hosts = Vec::new();
        for h in &spec.matcher.host.0 {
            match parse_host_pattern(h) {
                Ok(p) => hosts.push(p),
                Err(e) => self.problem(
                    file,
                    spec.matcher.host.span,
                    format!("{field}.match.host"),
                    e,
                ),
            }
        }
        if !spec.matcher.path_prefix.starts_with('/') {
            let span = spec.matcher.path_prefix.span;
            self.problem(
                file,
                span,
                format!("{field}.match.path_prefix"),
                "must start with /",
            );
        }
        if spec.flows.is_empty() {
            self.problem(
                file,
                spec.id.span,
                format!("{field}.flows"),
                "needs at least one flow",
            );
        }
        let mut flows = Vec::new();
        let mut names = HashSet::new();
        for (i, f) in spec.flows.iter().enumerate() {
            let ffield = format!("{field}.flows[{}]", f.name.value);
            if !names.insert(f.name.as_str()) {
                self.problem(
                    file,
                    f.name.span,
                    ffield.clone(),
                    "flow name used twice in this campaign",
                );
            }
            if f.condition.is_none() && i + 1 < spec.flows.len() {
                let msg = "has no `if`, so it always matches and the flows after it never run";
                self.problem(file, f.name.span, ffield.clone(), msg);
            }
            let condition = f
                .condition
                .as_ref()
                .and_then(|c| self.condition(file, &format!("{ffield}.if"), c));
            let salt = split_salt(&spec.id, &f.name);
            let target = self.target(file, &format!("{ffield}.to"), &f.to, routes, salt);
            if let Some(target) = target {
                flows.push(Flow {
                    name: f.name.value.clone(),
                    condition,
                    target,
                });
            }
        }
        (self.problems.len() == before).then(|| Campaign {
            id: spec.id.value.clone(),
            hosts,
            path_prefix: spec.matcher.path_prefix.value.clone(),
            flows,
        })
    }

    fn target(
        &mut self,
        file: &Path,
        field: &str,
        to: &At<TargetSpec>,
        routes: &HashMap<String, RouteId>,
        salt: u64,
    ) -> Option<Target> {
        let lookup = |this: &mut Self, name: &str| match routes.get(name) {
            Some(&r) => Some(r),
            None => {
                let msg = format!("unknown route {name:?}{}", known(routes.keys()));
                this.problem(file, to.span, field, msg);
                None
            }
        };
        match &to.value {
            TargetSpec::Route(name) => lookup(self, name).map(Target::Route),
            TargetSpec::Split(parts) => {
                let mut branches = Vec::new();
                let mut total: u32 = 0;
                for (name, weight) in parts {
                    let route = lookup(self, name)?;
                    total = total.checked_add(*weight)?;
                    if *weight > 0 {
                        branches.push((route, total));
                    }
                }
                if total == 0 {
                    self.problem(file, to.span, field, "a split needs a positive weight");
                    return None;
                }
                Some(Target::Split {
                    branches,
                    total,
                    salt,
                })
            }
        }
    }

    fn condition(
        &mut self,
        file: &Path,
        field: &str,
        spec: &At<ConditionSpec>,
    ) -> Option<Condition> {
        let span = spec.span;
        let before = self.problems.len();
        let mut terms = Vec::new();
        let c = &spec.value;
        let bad = |this: &mut Self, key: &str, msg: String| {
            this.problem(file, span, format!("{field}.{key}"), msg);
        };

        for (key, list, combine) in [
            (
                "all",
                &c.all,
                Condition::All as fn(Box<[Condition]>) -> Condition,
            ),
            ("any", &c.any, Condition::Any),
        ] {
            if let Some(list) = list {
                if list.is_empty() {
                    bad(self, key, "needs at least one condition".into());
                }
                let inner: Vec<_> = list
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| self.condition(file, &format!("{field}.{key}[{i}]"), s))
                    .collect();
                terms.push(combine(inner.into()));
            }
        }
        if let Some(inner) = &c.not {
            if let Some(x) = self.condition(file, &format!("{field}.not"), inner) {
                terms.push(Condition::Not(Box::new(x)));
            }
        }
        if let Some(codes) = &c.country {
            let mut set = CountrySet::default();
            for code in &codes.0 {
                match CountryCode::parse(code).filter(|c| c.is_assigned()) {
                    Some(cc) => set.insert(cc.index()),
                    None => bad(
                        self,
                        "country",
                        format!("{code:?} is not an ISO 3166-1 alpha-2 country code"),
                    ),
                }
            }
            terms.push(Condition::Country(set));
        }
        if let Some(asns) = &c.asn {
            let mut v = asns.0.clone();
            v.sort_unstable();
            v.dedup();
            terms.push(Condition::Asn(v.into()));
        }
        if let Some(nets) = &c.ip {
            let mut cidrs = Vec::new();
            for n in &nets.0 {
                match n.parse::<Cidr>() {
                    Ok(c) => cidrs.push(c),
                    Err(e) => bad(self, "ip", e),
                }
            }
            terms.push(Condition::Ip(CidrSet::new(cidrs)));
        }
        if let Some(names) = &c.ip_list {
            let mut mask = 0u64;
            for n in &names.0 {
                match self.intel.list_index(n) {
                    Some(i) => mask |= 1 << i,
                    None => {
                        let names = self.intel.lists.iter().map(|l| &l.name);
                        let msg = format!(
                            "unknown ip list {n:?} (lists come from intel.lists in the config){}",
                            known(names)
                        );
                        bad(self, "ip_list", msg)
                    }
                }
            }
            terms.push(Condition::IpList(mask));
        }
        if let Some(b) = c.bot {
            terms.push(Condition::Bot(b));
        }
        if let Some(devices) = &c.device {
            match family_mask(&devices.0, Device::parse, Device::bit, Device::names) {
                Ok(mask) => terms.push(Condition::Device(mask)),
                Err(e) => bad(self, "device", e),
            }
        }
        if let Some(v) = &c.os {
            match family_mask(&v.0, Os::parse, Os::bit, Os::names) {
                Ok(mask) => terms.push(Condition::Os(mask)),
                Err(e) => bad(self, "os", e),
            }
        }
        if let Some(v) = &c.browser {
            match family_mask(&v.0, Browser::parse, Browser::bit, Browser::names) {
                Ok(mask) => terms.push(Condition::Browser(mask)),
                Err(e) => bad(self, "browser", e),
            }
        }
        if let Some(flags) = &c.anonymous {
            let mut mask = 0u8;
            for f in &flags.0 {
                match Anonymous::from_name(f) {
                    Anonymous(0) => bad(
                        self,
                        "anonymous",
                        format!("unknown flag {f:?}; known: {}", Anonymous::NAMES.join(", ")),
                    ),
                    Anonymous(bit) => mask |= bit,
                }
            }
            terms.push(Condition::Anonymous(mask));
        }
        for (key, list, make) in [
            (
                "region",
                &c.region,
                Condition::Region as fn(Box<[String]>) -> Condition,
            ),
            ("city", &c.city, Condition::City),
        ] {
            if let Some(names) = list {
                if names.0.iter().any(|n| n.trim().is_empty()) {
                    bad(self, key, "names cannot be empty".into());
                }
                terms.push(make(names.0.clone().into()));
            }
        }
        if let Some(re) = &c.as_org {
            match compile_regex(re) {
                Ok(re) => terms.push(Condition::AsOrg(re)),
                Err(e) => bad(self, "as_org", e),
            }
        }
        if let Some(re) = &c.ua {
            match compile_regex(re) {
                Ok(re) => terms.push(Condition::Ua(re)),
                Err(e) => bad(self, "ua", e),
            }
        }
        if let Some(r) = &c.referer {
            if r == "empty" {
                terms.push(Condition::Referer(None));
            } else {
                match compile_regex(r) {
                    Ok(re) => terms.push(Condition::Referer(Some(re))),
                    Err(e) => bad(self, "referer", e),
                }
            }
        }
        if let Some(params) = &c.param {
            let mut checks = Vec::new();
            for (name, want) in params {
                match presence(want) {
                    Ok(p) => checks.push((name.clone(), p)),
                    Err(e) => bad(self, &format!("param.{name}"), e),
                }
            }
            terms.push(Condition::Param(checks.into()));
        }
        if let Some(headers) = &c.header {
            let mut checks = Vec::new();
            for (name, want) in headers {
                let Ok(h) = HeaderName::from_bytes(name.as_bytes()) else {
                    bad(
                        self,
                        "header",
                        format!("{name:?} is not a valid header name"),
                    );
                    continue;
                };
                match presence(want) {
                    Ok(p) => checks.push((h, p)),
                    Err(e) => bad(self, &format!("header.{name}"), e),
                }
            }
            terms.push(Condition::Header(checks.into()));
        }
        if let Some(langs) = &c.language {
            let mut tags = Vec::new();
            for l in &langs.0 {
                if (1..=8).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()) {
                    tags.push(l.to_ascii_lowercase());
                } else {
                    bad(
                        self,
                        "language",
                        format!("{l:?} is not a primary language tag like en or de"),
                    );
                }
            }
            terms.push(Condition::Language(tags.into()));
        }
        if let Some(methods) = &c.method {
            let mut out = Vec::new();
            for m in &methods.0 {
                match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                    Ok(m) => out.push(m),
                    Err(_) => bad(self, "method", format!("{m:?} is not an HTTP method")),
                }
            }
            terms.push(Condition::Method(out.into()));
        }
        if let Some(paths) = &c.path {
            match paths.0.as_slice() {
                [one] if one.starts_with('~') => match compile_regex(one[1..].trim()) {
                    Ok(re) => terms.push(Condition::Path(PathMatch::Regex(re))),
                    Err(e) => bad(self, "path", e),
                },
                prefixes => {
                    for p in prefixes.iter().filter(|p| !p.starts_with('/')) {
                        bad(
                            self,
                            "path",
                            format!("{p:?}: a prefix starts with /, a regex with ~"),
                        );
                    }
                    terms.push(Condition::Path(PathMatch::Prefixes(
                        prefixes.to_vec().into(),
                    )));
                }
            }
        }

        if let Some(spec) = &c.schedule {
            match schedule(spec) {
                Ok(s) => terms.push(Condition::Schedule(s)),
                Err(e) => bad(self, "schedule", e),
            }
        }
        if let Some(spec) = &c.rate {
            match super::rate::check(spec) {
                Ok((max, window, per_campaign)) => {
                    let new = || std::sync::Arc::new(super::rate::RateLimiter::new(max, window));
                    let limiter = if per_campaign {
                        new()
                    } else {
                        self.rates.entry((max, window)).or_insert_with(new).clone()
                    };
                    terms.push(Condition::Rate(limiter));
                }
                Err(e) => bad(self, "rate", e),
            }
        }

        if terms.is_empty() && self.problems.len() == before {
            self.problem(file, span, field, "empty condition");
        }
        if self.problems.len() != before {
            return None;
        }
        Some(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Condition::All(terms.into())
        })
    }
}

fn schedule(spec: &ScheduleSpec) -> Result<Schedule, String> {
    let mut days = 0u8;
    for d in spec.days.iter().flat_map(|d| d.0.iter()) {
        let key = d.trim().to_ascii_lowercase();
        let i = WEEKDAYS
            .iter()
            .position(|w| key.starts_with(w) && key.len() >= 3)
            .ok_or_else(|| format!("{d:?} is not a day (mon, tue, ... sun)"))?;
        days |= 1 << i;
    }
    let hm = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':').unwrap_or((t.trim(), "0"));
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
    };
    let window = match &spec.hours {
        Some(w) => {
            let bad = || format!("hours {w:?} is not a window like \"09:00-17:30\" or \"22-06\"");
            let (a, b) = w.split_once('-').ok_or_else(bad)?;
            Some((hm(a).ok_or_else(bad)?, hm(b).ok_or_else(bad)?))
        }
        None => None,
    };
    let offset_min = match spec.tz.as_deref().map(str::trim) {
        None | Some("UTC" | "utc" | "Z") => 0,
        Some(tz) => {
            let bad = || {
                format!(
                    "tz {tz:?} is not UTC or an offset like +02:00 (zone names are not supported)"
                )
            };
            let sign = match tz.get(..1) {
                Some("+") => 1,
                Some("-") => -1,
                _ => return Err(bad()),
            };
            let (h, m) = tz[1..].split_once(':').unwrap_or((&tz[1..], "0"));
            let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if h > 14 || m > 59 {
                return Err(bad());
            }
            sign * (h * 60 + m)
        }
    };
    if days == 0 && window.is_none() {
        return Err("needs days, hours or both".into());
    }
    Ok(Schedule {
        days,
        window,
        offset_min,
    })
}

/// A set of family members (devices, OSes, browsers) as a bitmask.
fn family_mask<T>(
    names: &[String],
    parse: fn(&str) -> Option<T>,
    bit: fn(T) -> u16,
    known: fn() -> String,
) -> Result<u16, String> {
    let mut mask = 0;
    for n in names {
        match parse(n) {
            Some(x) => mask |= bit(x),
            None => return Err(format!("unknown value {n:?}; known: {}", known())),
        }
    }
    Ok(mask)
}

/// Nothing but white space and comments.
fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    })
}

fn presence(want: &str) -> Result<Presence, String> {
    Ok(match want {
        "present" => Presence::Present,
        "absent" => Presence::Absent,
        re => Presence::Matches(compile_regex(re)?),
    })
}

fn compile_regex(re: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(re)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("bad regex {re:?}: {e}"))
}

fn parse_host_pattern(h: &str) -> Result<HostPattern, String> {
    let h = h.trim().to_ascii_lowercase();
    let valid = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'))
    };
    if h == "*" {
        return Ok(HostPattern::Any);
    }
    if let Some(rest) = h.strip_prefix("*.") {
        if valid(rest) {
            return Ok(HostPattern::Suffix(format!(".{rest}")));
        }
    } else if valid(&h) {
        return Ok(HostPattern::Exact(h));
    }
    Err(format!("{h:?} is not a host, *.domain or *"))
}

fn resolve_peer(p: &At<String>) -> Result<Vec<SocketAddr>, String> {
    if let Ok(a) = p.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    if !p.contains(':') {
        return Err(format!("{:?} needs a port (host:port)", p.value));
    }
    // Names are resolved once per snapshot, never per request.
    match p.as_str().to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            if addrs.is_empty() {
                Err(format!("{:?} resolves to no address", p.value))
            } else {
                Ok(addrs)
            }
        }
        Err(e) => Err(format!("cannot resolve {:?}: {e}", p.value)),
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

fn known<'a, S: AsRef<str> + 'a>(names: impl Iterator<Item = S>) -> String {
    let mut v: Vec<String> = names.map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        return String::new();
    }
    v.sort();
    format!("; known: {}", v.join(", "))
}
