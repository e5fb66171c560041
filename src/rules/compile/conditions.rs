//! The `if` of a flow: one check per condition kind, each turning what the operator wrote
//! into a compiled `Condition` or saying everything that is wrong with it.

use std::collections::BTreeMap;
use std::path::Path;

use http::{HeaderName, Method};
use regex::Regex;

use super::campaigns::{check_path_prefix, PathPrefixError};
use super::claims;
use super::schedule::{schedule, ScheduleError};
use super::{known_or_nearest, Compiler};
use crate::identity::countries;
use crate::identity::{Anonymous, BadCidr, Browser, Cidr, CidrSet, CountryCode, Device, Intel, Os};
use crate::problem::Span;
use crate::rules::condition::{Condition, CountrySet, PathMatch, Presence};
use crate::rules::model::{ConditionSpec, ScheduleSpec, UniqueSpec};
use crate::rules::rate::{self, RateError, RateLimiter, RateSpec};
use crate::yaml::At;

#[derive(Debug, thiserror::Error)]
pub enum ConditionError {
    #[error("empty condition")]
    Empty,
    #[error("needs at least one condition")]
    NoConditions,
    #[error("needs at least one value (an empty list never matches)")]
    NoValues,
    #[error("{code:?} is not an ISO 3166-1 alpha-2 country code{}", meant.map(|m| format!("; did you mean {m:?}?")).unwrap_or_default())]
    Country {
        code: String,
        meant: Option<&'static str>,
    },
    #[error("names cannot be empty")]
    EmptyName,
    #[error(transparent)]
    Ip(#[from] BadCidr),
    #[error("unknown ip list {name:?} (lists come from intel.lists in the config){known}")]
    UnknownList { name: String, known: String },
    #[error("unknown value {value:?}{known}")]
    UnknownValue { value: String, known: String },
    #[error("unknown flag {0:?}{hint}", hint = flag_hint(.0))]
    UnknownFlag(String),
    #[error("bad regex {pattern:?}: {reason}")]
    Regex {
        pattern: String,
        reason: regex::Error,
    },
    #[error("{0:?} is not a valid header name")]
    HeaderName(String),
    #[error("{0:?} is not a primary language tag like en or de")]
    Language(String),
    #[error("{0:?} is not an HTTP method")]
    Method(String),
    #[error("{0:?}: a prefix starts with /, a regex with ~")]
    PathKind(String),
    #[error(transparent)]
    PathPrefix(#[from] PathPrefixError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Rate(#[from] RateError),
    #[error("window must be at least 1s")]
    UniqueWindow,
    #[error("scope {0:?}: use campaign or flow")]
    UniqueScope(String),
    #[error("{0}")]
    Ja4(String),
}

/// The flags in their documented order, or the one meant.
fn flag_hint(flag: &str) -> String {
    match crate::suggest::did_you_mean(flag, Anonymous::NAMES) {
        h if h.is_empty() => format!("; known: {}", Anonymous::NAMES.join(", ")),
        h => h,
    }
}

/// A problem in one key of a condition; `sub` narrows the field (`param.utm_source`).
pub(super) struct Bad {
    sub: Option<String>,
    error: ConditionError,
}

impl From<ConditionError> for Bad {
    fn from(error: ConditionError) -> Bad {
        Bad { sub: None, error }
    }
}

/// One key of a condition, compiled, or every problem in it.
pub(super) type Checked = Result<Condition, Vec<Bad>>;

impl Compiler<'_> {
    /// `None` when anything in the condition is wrong (and each thing is a problem).
    pub(super) fn condition(
        &mut self,
        file: &Path,
        field: &str,
        spec: &At<ConditionSpec>,
    ) -> Option<Condition> {
        let (c, span) = (&spec.value, spec.span);
        let before = self.problems.len();
        let mut terms = Vec::new();
        terms.extend(self.check_list(file, field, span, "all", &c.all, Condition::All));
        terms.extend(self.check_list(file, field, span, "any", &c.any, Condition::Any));
        if let Some(inner) = &c.not {
            let inner = self.condition(file, &format!("{field}.not"), inner);
            terms.extend(inner.map(|x| Condition::Not(Box::new(x))));
        }
        let intel = self.intel;
        // In this order the keys of one map are evaluated (`rate` last: it counts a request
        // only once everything before it held).
        let checked = [
            ("country", c.country.as_ref().map(|v| check_country(&v.0))),
            ("asn", c.asn.as_ref().map(|v| check_asn(&v.0))),
            ("ip", c.ip.as_ref().map(|v| check_ip(&v.0))),
            (
                "ip_list",
                c.ip_list.as_ref().map(|v| check_ip_list(intel, &v.0)),
            ),
            ("bot", c.bot.map(|b| Ok(Condition::Bot(b)))),
            ("device", c.device.as_ref().map(|v| check_device(&v.0))),
            ("os", c.os.as_ref().map(|v| check_os(&v.0))),
            ("browser", c.browser.as_ref().map(|v| check_browser(&v.0))),
            ("crawler", c.crawler.as_ref().map(|v| claims::crawler(&v.0))),
            ("signal", c.signal.as_ref().map(|v| claims::signal(&v.0))),
            (
                "anonymous",
                c.anonymous.as_ref().map(|v| check_anonymous(&v.0)),
            ),
            ("region", c.region.as_ref().map(|v| check_region(&v.0))),
            ("city", c.city.as_ref().map(|v| check_city(&v.0))),
            ("as_org", c.as_org.as_deref().map(check_as_org)),
            ("ua", c.ua.as_deref().map(check_ua)),
            ("referer", c.referer.as_deref().map(check_referer)),
            ("param", c.param.as_ref().map(check_param)),
            ("header", c.header.as_ref().map(check_header)),
            (
                "language",
                c.language.as_ref().map(|v| check_language(&v.0)),
            ),
            ("method", c.method.as_ref().map(|v| check_method(&v.0))),
            ("ja4", c.ja4.as_ref().map(|v| check_ja4(&v.0))),
            ("path", c.path.as_ref().map(|v| check_path(&v.0))),
            ("schedule", c.schedule.as_ref().map(check_schedule)),
            ("unique", c.unique.as_ref().map(|u| self.check_unique(u))),
            ("rate", c.rate.as_ref().map(|r| self.check_rate(r))),
        ];
        for (key, result) in checked {
            match result {
                None => {}
                Some(Ok(term)) => terms.push(term),
                Some(Err(bad)) => {
                    for Bad { sub, error } in bad {
                        let f = match sub {
                            Some(sub) => format!("{field}.{key}.{sub}"),
                            None => format!("{field}.{key}"),
                        };
                        self.problem(file, span, f, error.to_string());
                    }
                }
            }
        }
        if terms.is_empty() && self.problems.len() == before {
            self.problem(file, span, field, ConditionError::Empty.to_string());
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

    /// `all` and `any`: lists of whole conditions, each compiled (and located) on its own.
    fn check_list(
        &mut self,
        file: &Path,
        field: &str,
        span: Span,
        key: &str,
        list: &Option<Vec<At<ConditionSpec>>>,
        combine: fn(Box<[Condition]>) -> Condition,
    ) -> Option<Condition> {
        let list = list.as_ref()?;
        if list.is_empty() {
            let msg = ConditionError::NoConditions.to_string();
            self.problem(file, span, format!("{field}.{key}"), msg);
            return None;
        }
        let inner: Vec<_> = list
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.condition(file, &format!("{field}.{key}[{i}]"), s))
            .collect();
        (inner.len() == list.len()).then(|| combine(inner.into()))
    }

    /// `unique` in the campaign (or flow) being compiled.
    fn check_unique(&mut self, spec: &UniqueSpec) -> Checked {
        let flow = match spec.scope.as_deref() {
            None | Some("campaign") => false,
            Some("flow") => true,
            Some(other) => return Err(one(ConditionError::UniqueScope(other.to_string()))),
        };
        if spec.window.0.as_secs() == 0 {
            return Err(one(ConditionError::UniqueWindow));
        }
        Ok(Condition::Unique {
            window_ms: spec.window.0.as_millis() as u64,
            scope: if flow { self.scope.1 } else { self.scope.0 },
            flow,
        })
    }

    /// `per: ip` limiters of the same rate are one: a visitor has one count across the
    /// rules. `per: [ip, campaign]` keeps a count of its own.
    fn check_rate(&mut self, spec: &RateSpec) -> Checked {
        let (max, window, per_campaign) = rate::check(spec).map_err(one)?;
        let new = || std::sync::Arc::new(RateLimiter::new(max, window));
        let limiter = if per_campaign {
            new()
        } else {
            self.rates.entry((max, window)).or_insert_with(new).clone()
        };
        Ok(Condition::Rate(limiter))
    }
}

fn one(e: impl Into<ConditionError>) -> Vec<Bad> {
    vec![Bad::from(e.into())]
}

/// Every value through `check`, each bad one reported. An empty list is refused: it would
/// never match, and nothing would say why.
pub(super) fn each<T, U>(
    values: &[T],
    check: impl Fn(&T) -> Result<U, ConditionError>,
) -> Result<Vec<U>, Vec<Bad>> {
    if values.is_empty() {
        return Err(one(ConditionError::NoValues));
    }
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for v in values {
        match check(v) {
            Ok(x) => good.push(x),
            Err(e) => bad.push(Bad::from(e)),
        }
    }
    if bad.is_empty() {
        Ok(good)
    } else {
        Err(bad)
    }
}

fn check_country(codes: &[String]) -> Checked {
    let codes = each(codes, |code| {
        CountryCode::parse(code)
            .filter(|c| c.is_assigned())
            .ok_or_else(|| ConditionError::Country {
                code: code.clone(),
                meant: countries::suggest(code),
            })
    })?;
    let mut set = CountrySet::default();
    for c in codes {
        set.insert(c.index());
    }
    Ok(Condition::Country(set))
}

fn check_asn(asns: &[u32]) -> Checked {
    let mut v = each(asns, |a| Ok(*a))?;
    v.sort_unstable();
    v.dedup();
    Ok(Condition::Asn(v.into()))
}

fn check_ip(nets: &[String]) -> Checked {
    let cidrs = each(nets, |n| n.parse::<Cidr>().map_err(ConditionError::Ip))?;
    Ok(Condition::Ip(CidrSet::new(cidrs)))
}

fn check_ip_list(intel: &Intel, names: &[String]) -> Checked {
    let indexes = each(names, |n| {
        intel
            .list_index(n)
            .ok_or_else(|| ConditionError::UnknownList {
                name: n.clone(),
                known: known_or_nearest(n, intel.lists.iter().map(|l| &l.name)),
            })
    })?;
    Ok(Condition::IpList(
        indexes.into_iter().fold(0u64, |m, i| m | 1 << i),
    ))
}

fn check_device(names: &[String]) -> Checked {
    family_mask(names, Device::parse, Device::bit, Device::names).map(Condition::Device)
}

fn check_os(names: &[String]) -> Checked {
    family_mask(names, Os::parse, Os::bit, Os::names).map(Condition::Os)
}

fn check_browser(names: &[String]) -> Checked {
    family_mask(names, Browser::parse, Browser::bit, Browser::names).map(Condition::Browser)
}

/// A set of family members (devices, OSes, browsers) as a bitmask.
fn family_mask<T>(
    names: &[String],
    parse: fn(&str) -> Option<T>,
    bit: fn(T) -> u16,
    known: fn() -> String,
) -> Result<u16, Vec<Bad>> {
    let bits = each(names, |n| {
        parse(n)
            .map(bit)
            .ok_or_else(|| ConditionError::UnknownValue {
                value: n.clone(),
                known: super::known_or_nearest(n, known().split(", ")),
            })
    })?;
    Ok(bits.into_iter().fold(0, |m, b| m | b))
}

fn check_anonymous(flags: &[String]) -> Checked {
    let bits = each(flags, |f| match Anonymous::from_name(f) {
        Anonymous(0) => Err(ConditionError::UnknownFlag(f.clone())),
        Anonymous(bit) => Ok(bit),
    })?;
    Ok(Condition::Anonymous(bits.into_iter().fold(0, |m, b| m | b)))
}

fn check_region(names: &[String]) -> Checked {
    place_names(names).map(Condition::Region)
}

fn check_city(names: &[String]) -> Checked {
    place_names(names).map(Condition::City)
}

fn place_names(names: &[String]) -> Result<Box<[String]>, Vec<Bad>> {
    let names = each(names, |n| match n.trim() {
        "" => Err(ConditionError::EmptyName),
        _ => Ok(n.clone()),
    })?;
    Ok(names.into())
}

fn check_as_org(re: &str) -> Checked {
    compile_regex(re).map(Condition::AsOrg).map_err(one)
}

fn check_ua(re: &str) -> Checked {
    compile_regex(re).map(Condition::Ua).map_err(one)
}

fn check_referer(r: &str) -> Checked {
    if r == "empty" {
        return Ok(Condition::Referer(None));
    }
    compile_regex(r)
        .map(|re| Condition::Referer(Some(re)))
        .map_err(one)
}

fn check_param(params: &BTreeMap<String, String>) -> Checked {
    let checks = named(params, |name| Ok(name.to_string()))?;
    Ok(Condition::Param(checks.into()))
}

fn check_header(headers: &BTreeMap<String, String>) -> Checked {
    let checks = named(headers, |name| {
        HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConditionError::HeaderName(name.to_string()))
    })?;
    Ok(Condition::Header(checks.into()))
}

/// `name: present | absent | regex` pairs of `param` and `header`; none at all would hold for
/// every request.
fn named<N>(
    pairs: &BTreeMap<String, String>,
    name: impl Fn(&str) -> Result<N, ConditionError>,
) -> Result<Vec<(N, Presence)>, Vec<Bad>> {
    if pairs.is_empty() {
        return Err(one(ConditionError::NoValues));
    }
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (n, want) in pairs {
        match name(n).and_then(|n| Ok((n, presence(want)?))) {
            Ok(pair) => good.push(pair),
            Err(error) => bad.push(Bad {
                sub: Some(n.clone()),
                error,
            }),
        }
    }
    if bad.is_empty() {
        Ok(good)
    } else {
        Err(bad)
    }
}

fn presence(want: &str) -> Result<Presence, ConditionError> {
    Ok(match want {
        "present" => Presence::Present,
        "absent" => Presence::Absent,
        re => Presence::Matches(compile_regex(re)?),
    })
}

fn check_language(langs: &[String]) -> Checked {
    let tags = each(langs, |l| {
        if (1..=8).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(l.to_ascii_lowercase())
        } else {
            Err(ConditionError::Language(l.clone()))
        }
    })?;
    Ok(Condition::Language(tags.into()))
}

fn check_method(methods: &[String]) -> Checked {
    let methods = each(methods, |m| {
        Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| ConditionError::Method(m.clone()))
    })?;
    Ok(Condition::Method(methods.into()))
}

fn check_ja4(values: &[String]) -> Checked {
    if values.is_empty() {
        return Err(one(ConditionError::NoValues));
    }
    crate::rules::ja4::Ja4List::parse(values)
        .map(Condition::Ja4)
        .map_err(|bad| {
            bad.into_iter()
                .map(|m| ConditionError::Ja4(m).into())
                .collect()
        })
}

/// One `~regex`, or path prefixes written as request paths are matched.
fn check_path(paths: &[String]) -> Checked {
    if let [one_path] = paths {
        if let Some(re) = one_path.strip_prefix('~') {
            return compile_regex(re.trim())
                .map(|re| Condition::Path(PathMatch::Regex(re)))
                .map_err(one);
        }
    }
    let prefixes = each(paths, |p| match check_path_prefix(p) {
        Ok(()) => Ok(p.clone()),
        Err(PathPrefixError::NotAbsolute) => Err(ConditionError::PathKind(p.clone())),
        Err(e) => Err(e.into()),
    })?;
    Ok(Condition::Path(PathMatch::Prefixes(prefixes.into())))
}

fn check_schedule(spec: &ScheduleSpec) -> Checked {
    schedule(spec).map(Condition::Schedule).map_err(one)
}

fn compile_regex(re: &str) -> Result<Regex, ConditionError> {
    regex::RegexBuilder::new(re)
        .size_limit(1 << 20)
        .build()
        .map_err(|reason| ConditionError::Regex {
            pattern: re.to_string(),
            reason,
        })
}
