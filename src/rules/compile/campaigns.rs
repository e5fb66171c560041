//! `campaigns`: what each matches (host and path prefix), its flows and their targets.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use super::{known_or_nearest, Compiler};
use crate::problem::Span;
use crate::rules::model::{CampaignSpec, FlowSpec, RuleFile, TargetSpec};
use crate::rules::{split_salt, Campaign, Flow, HostPattern, RouteId, Target};
use crate::yaml::At;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostPatternError {
    #[error("{0:?} is not a host, *.domain or *")]
    Invalid(String),
    #[error("{0:?} has a port; campaigns match the host without its port")]
    Port(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathPrefixError {
    #[error("must start with /")]
    NotAbsolute,
    #[error("{0:?} holds `?`, `#` or white space, which no request path has")]
    NotAPath(String),
    #[error("{prefix:?}: {reason}")]
    Refused {
        prefix: String,
        reason: crate::path::PathError,
    },
    #[error("{prefix:?} is not in the form request paths are matched in; write {canonical:?}")]
    NotCanonical { prefix: String, canonical: String },
}

impl Compiler<'_> {
    /// Every campaign; two campaigns may not match the same host and path prefix.
    pub(super) fn campaigns(
        &mut self,
        files: &[(PathBuf, RuleFile)],
        routes: &HashMap<String, RouteId>,
    ) -> Vec<Campaign> {
        let mut campaigns = Vec::new();
        let mut seen_ids: HashMap<&str, (&Path, Span)> = HashMap::new();
        let mut seen_matches: HashMap<(HostPattern, &str), &str> = HashMap::new();
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
                seen_ids.insert(spec.id.as_str(), (file.as_path(), spec.id.span));
                let prefix = spec.matcher.path_prefix.as_str();
                // Keyed by the pattern as matched, so `Promo.example.com.` and
                // `promo.example.com` are seen as the one host they are: of two campaigns
                // on it, the second would never be chosen.
                for host in &spec.matcher.host.0 {
                    let Ok(pattern) = parse_host_pattern(host) else {
                        continue;
                    };
                    if let Some(other) = seen_matches.insert((pattern, prefix), &spec.id) {
                        if other != spec.id.value {
                            let msg = format!(
                                "campaign {other:?} already matches host {host:?} and path_prefix {prefix:?}"
                            );
                            let span = spec.matcher.host.span;
                            self.problem(file, span, format!("{field}.match"), msg);
                        }
                    }
                }
                if let Some(c) = self.campaign(file, spec, routes) {
                    campaigns.push(c);
                }
            }
        }
        campaigns
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
                    e.to_string(),
                ),
            }
        }
        if spec.matcher.host.0.is_empty() {
            let msg = "needs at least one host (`*` for any)";
            let span = spec.matcher.host.span;
            self.problem(file, span, format!("{field}.match.host"), msg);
        }
        let prefix = &spec.matcher.path_prefix;
        if let Err(e) = check_path_prefix(prefix) {
            let f = format!("{field}.match.path_prefix");
            self.problem(file, prefix.span, f, e.to_string());
        }
        if let Some(path) = &spec.click_path {
            if let Err(e) = check_path_prefix(path) {
                let f = format!("{field}.click_path");
                self.problem(file, path.span, f, e.to_string());
            }
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
            let last = i + 1 == spec.flows.len();
            if let Some(flow) = self.flow(file, &field, spec, f, last, &mut names, routes) {
                flows.push(flow);
            }
        }
        (self.problems.len() == before).then(|| Campaign {
            scope: crate::state::scope(&spec.id, None),
            id: spec.id.value.clone(),
            hosts,
            path_prefix: prefix.value.clone(),
            click_path: spec.click_path.as_ref().map(|p| p.value.clone()),
            flows,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn flow<'s>(
        &mut self,
        file: &Path,
        field: &str,
        campaign: &CampaignSpec,
        f: &'s FlowSpec,
        last: bool,
        names: &mut HashSet<&'s str>,
        routes: &HashMap<String, RouteId>,
    ) -> Option<Flow> {
        let ffield = format!("{field}.flows[{}]", f.name.value);
        if f.name.trim().is_empty() {
            self.problem(
                file,
                f.name.span,
                format!("{ffield}.name"),
                "cannot be empty",
            );
        }
        if !names.insert(f.name.as_str()) {
            let msg = "flow name used twice in this campaign";
            self.problem(file, f.name.span, ffield.clone(), msg);
        }
        // A cap is a condition of its own: a cap-only flow may stand anywhere.
        if f.condition.is_none() && f.cap.is_none() && !last {
            let msg = "has no `if`, so it always matches and the flows after it never run";
            self.problem(file, f.name.span, ffield.clone(), msg);
        }
        let scope = crate::state::scope(&campaign.id, Some(&f.name));
        self.scope = (crate::state::scope(&campaign.id, None), scope);
        let condition = f
            .condition
            .as_ref()
            .map(|c| self.condition(file, &format!("{ffield}.if"), c));
        let cap = f
            .cap
            .as_ref()
            .map(|c| self.cap(file, &ffield, &campaign.id, &f.name, c));
        let salt = split_salt(&campaign.id, &f.name);
        let target = self.target(file, &format!("{ffield}.to"), &f.to, routes, salt);
        let then = f.then.as_ref().map(|then| {
            let tfield = format!("{ffield}.then");
            if campaign.click_path.is_none() {
                let msg = "needs the campaign's click_path: the lander's click-through is where `then` decides";
                self.problem(file, then.span, tfield.clone(), msg);
            }
            let salt = split_salt(&campaign.id, &format!("{}\x1fthen", f.name.value));
            self.target(file, &tfield, then, routes, salt)
        });
        let then = match then {
            Some(None) => return None,
            Some(Some(t)) => Some(t),
            None => None,
        };
        // A condition that failed to compile must not leave the flow matching everyone.
        let condition = match condition {
            Some(None) => return None,
            Some(Some(c)) => Some(c),
            None => None,
        };
        let cap = match cap {
            Some(None) => return None,
            Some(Some(c)) => Some(c),
            None => None,
        };
        Some(Flow {
            name: f.name.value.clone(),
            scope,
            condition,
            cap,
            target: target?,
            then,
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
        let mut lookup = |name: &str| match routes.get(name) {
            Some(&r) => Some(r),
            None => {
                let msg = format!(
                    "unknown route {name:?}{}",
                    known_or_nearest(name, routes.keys())
                );
                self.problems.push(file, to.span, field, msg);
                None
            }
        };
        let parts = match &to.value {
            TargetSpec::Route(name) => return lookup(name).map(Target::Route),
            TargetSpec::Split(parts) => parts,
        };
        // Every unknown route is reported, not only the first.
        let resolved: Vec<Option<RouteId>> = parts.iter().map(|(name, _)| lookup(name)).collect();
        let mut branches = Vec::new();
        let mut total: u32 = 0;
        for ((_, weight), route) in parts.iter().zip(&resolved) {
            let Some(sum) = total.checked_add(*weight) else {
                let sum: u64 = parts.iter().map(|(_, w)| u64::from(*w)).sum();
                let msg = format!("the weights add up to {sum}, more than {}", u32::MAX);
                self.problem(file, to.span, field, msg);
                return None;
            };
            total = sum;
            if let (Some(route), true) = (route, *weight > 0) {
                branches.push((*route, total));
            }
        }
        if resolved.iter().any(Option::is_none) {
            return None;
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

/// A campaign's `match.host` entry, in the form request hosts are compared in (no port, no
/// trailing dot, IPv6 without brackets): any other form would silently never match.
pub(super) fn parse_host_pattern(h: &str) -> Result<HostPattern, HostPatternError> {
    let h = h.trim().to_ascii_lowercase();
    if h == "*" {
        return Ok(HostPattern::Any);
    }
    let (wild, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, h.as_str()),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let v6 = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    if !wild && v6.parse::<Ipv6Addr>().is_ok() {
        return Ok(HostPattern::Exact(v6.to_string()));
    }
    if name.contains(':') {
        return Err(HostPatternError::Port(h.clone()));
    }
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        });
    match (valid, wild) {
        (true, true) => Ok(HostPattern::Suffix(format!(".{name}"))),
        (true, false) => Ok(HostPattern::Exact(name.to_string())),
        (false, _) => Err(HostPatternError::Invalid(h.clone())),
    }
}

/// A path prefix (campaign `path_prefix`, proxy `path`) must be written as request paths
/// are matched: canonical, or it would never match and nothing would say so.
pub(super) fn check_path_prefix(p: &str) -> Result<(), PathPrefixError> {
    if !p.starts_with('/') {
        return Err(PathPrefixError::NotAbsolute);
    }
    if p.contains(['?', '#']) || p.chars().any(char::is_whitespace) {
        return Err(PathPrefixError::NotAPath(p.to_string()));
    }
    match crate::path::normalize(p) {
        Ok(Cow::Borrowed(_)) => Ok(()),
        Ok(Cow::Owned(canonical)) => Err(PathPrefixError::NotCanonical {
            prefix: p.to_string(),
            canonical,
        }),
        Err(reason) => Err(PathPrefixError::Refused {
            prefix: p.to_string(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_take_the_form_requests_are_matched_in() {
        let exact = |s: &str| Ok(HostPattern::Exact(s.into()));
        assert_eq!(
            parse_host_pattern(" Promo.Example.com. "),
            exact("promo.example.com")
        );
        assert_eq!(parse_host_pattern("[::1]"), exact("::1"));
        assert_eq!(parse_host_pattern("2001:db8::1"), exact("2001:db8::1"));
        assert_eq!(
            parse_host_pattern("*.example.com"),
            Ok(HostPattern::Suffix(".example.com".into()))
        );
        assert_eq!(parse_host_pattern("*"), Ok(HostPattern::Any));
        assert!(matches!(
            parse_host_pattern("promo.example.com:8080"),
            Err(HostPatternError::Port(_))
        ));
        for bad in ["", "a..b", "*.", "a b", "a.*.com", "*.[::1]"] {
            assert!(parse_host_pattern(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn path_prefixes_must_be_canonical() {
        assert_eq!(check_path_prefix("/"), Ok(()));
        assert_eq!(check_path_prefix("/promo/"), Ok(()));
        assert_eq!(
            check_path_prefix("promo"),
            Err(PathPrefixError::NotAbsolute)
        );
        assert!(matches!(
            check_path_prefix("/a/../b"),
            Err(PathPrefixError::NotCanonical { canonical, .. }) if canonical == "/b"
        ));
        assert!(matches!(
            check_path_prefix("//promo"),
            Err(PathPrefixError::NotCanonical { .. })
        ));
        assert!(check_path_prefix("/promo?x=1").is_err());
        assert!(check_path_prefix("/a%2Fb").is_err());
    }
}
