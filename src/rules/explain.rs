//! The same evaluation as `Rules::evaluate`, recording every flow and condition it looked at,
//! with the value seen and the result. For operators (`flowgate explain`, `/explain`), never
//! on the request path.

use std::fmt::Write;

use serde::Serialize;

use super::condition::Condition;
use super::{Decision, RequestFacts, Rules, Target};
use crate::identity::{Intel, Visitor};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Step {
    /// The flow being evaluated; `None` for campaign selection.
    pub flow: Option<String>,
    /// Where in the flow: `if.any[0].bot`, `flow`, `split`, `campaign`.
    pub condition: String,
    /// What the visitor or request had.
    pub value: String,
    pub result: bool,
}

impl Rules {
    pub fn explain(&self, intel: &Intel, v: &Visitor, r: &RequestFacts) -> (Decision, Vec<Step>) {
        let mut trace = Vec::new();
        let seen = format!("{} {}", r.hostname(), r.path);
        let Some(ci) = self.campaign_for(r) else {
            trace.push(Step {
                flow: None,
                condition: "campaign".into(),
                value: seen,
                result: false,
            });
            return (self.evaluate(v, r), trace);
        };
        let campaign = &self.campaigns[ci];
        trace.push(Step {
            flow: None,
            condition: format!("campaign {}", campaign.id),
            value: seen,
            result: true,
        });
        for flow in &campaign.flows {
            let mut ctx = Tracer {
                intel,
                v,
                r,
                flow: &flow.name,
                trace: &mut trace,
            };
            let mut matched = match &flow.condition {
                Some(c) => ctx.eval(c, &mut "if".to_string()),
                None => true,
            };
            if let (true, Some(cap)) = (matched, &flow.cap) {
                let state = r.state.get();
                let open = state.peek_cap(&cap.counter, cap.limit, cap.counts);
                let count = open.map_or_else(|n| n, |n| n - 1);
                let c = &cap.counter;
                let seen = format!(
                    "{}{count} of {} {} per {}{}",
                    if state.assumed().is_some() {
                        "assumed "
                    } else {
                        ""
                    },
                    cap.limit,
                    cap.counts.as_str(),
                    c.per.as_str(),
                    match (c.per, c.offset_min) {
                        (crate::state::Per::Total, _) | (_, 0) => String::new(),
                        (_, m) => format!(" (UTC{:+03}:{:02})", m / 60, (m % 60).abs()),
                    }
                );
                trace.push(Step {
                    flow: Some(flow.name.clone()),
                    condition: "cap".into(),
                    value: seen,
                    result: open.is_ok(),
                });
                matched = open.is_ok();
            }
            trace.push(Step {
                flow: Some(flow.name.clone()),
                condition: "flow".into(),
                value: String::new(),
                result: matched,
            });
            if matched {
                if let Target::Split { total, .. } = &flow.target {
                    let route = flow.target.pick(v, r);
                    trace.push(Step {
                        flow: Some(flow.name.clone()),
                        condition: "split".into(),
                        value: format!(
                            "sticky branch {} (of total weight {total})",
                            self.routes[route].name
                        ),
                        result: true,
                    });
                }
                break;
            }
        }
        // The decision comes from the real evaluator, so the trace can never disagree with it.
        (self.evaluate(v, r), trace)
    }
}

struct Tracer<'a, 'r> {
    intel: &'a Intel,
    v: &'a Visitor,
    r: &'a RequestFacts<'r>,
    flow: &'a str,
    trace: &'a mut Vec<Step>,
}

impl Tracer<'_, '_> {
    fn eval(&mut self, c: &Condition, path: &mut String) -> bool {
        let (v, r) = (self.v, self.r);
        let mut children = |this: &mut Self, name: &str, cs: &[Condition], any: bool| {
            let base = path.len();
            let mut result = !any;
            for (i, c) in cs.iter().enumerate() {
                let _ = write!(path, ".{name}[{i}]");
                let x = this.eval(c, path);
                path.truncate(base);
                if x == any {
                    result = any;
                    break;
                }
            }
            result
        };
        let (value, result) = match c {
            Condition::All(cs) => (String::new(), children(self, "all", cs, false)),
            Condition::Any(cs) => (String::new(), children(self, "any", cs, true)),
            Condition::Not(inner) => {
                let base = path.len();
                path.push_str(".not");
                let x = self.eval(inner, path);
                path.truncate(base);
                (String::new(), !x)
            }
            Condition::Country(_) => (
                v.country
                    .map_or("unknown".into(), |c| c.as_str().to_string()),
                c.eval(v, r),
            ),
            Condition::Region(_) => (
                v.region.as_deref().unwrap_or("unknown").to_string(),
                c.eval(v, r),
            ),
            Condition::City(_) => (
                v.city.as_deref().unwrap_or("unknown").to_string(),
                c.eval(v, r),
            ),
            Condition::AsOrg(_) => (
                v.as_org.as_deref().unwrap_or("unknown").to_string(),
                c.eval(v, r),
            ),
            Condition::Anonymous(_) => {
                let flags: Vec<&str> = v.anonymous.names().collect();
                (
                    if flags.is_empty() {
                        "none".into()
                    } else {
                        flags.join(",")
                    },
                    c.eval(v, r),
                )
            }
            Condition::Os(_) => (v.os.as_str().to_string(), c.eval(v, r)),
            Condition::Browser(_) => (v.browser.as_str().to_string(), c.eval(v, r)),
            Condition::Asn(_) => (
                v.asn.map_or("unknown".into(), |a| a.to_string()),
                c.eval(v, r),
            ),
            Condition::Ip(_) => (v.ip.to_string(), c.eval(v, r)),
            Condition::IpList(_) => {
                let names: Vec<&str> = self.intel.list_names(v.ip_lists).collect();
                (
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(",")
                    },
                    c.eval(v, r),
                )
            }
            Condition::Bot(_) => (v.bot.to_string(), c.eval(v, r)),
            Condition::Crawler(_) => (v.crawler.to_string(), c.eval(v, r)),
            Condition::Signal(mask) => {
                let found = super::signals::first(*mask, v, r);
                (
                    found.map_or("none".into(), |f| f.to_string()),
                    found.is_some(),
                )
            }
            Condition::Device(_) => (v.device.as_str().to_string(), c.eval(v, r)),
            Condition::Ua(_) => (r.user_agent().unwrap_or("").to_string(), c.eval(v, r)),
            Condition::Referer(_) => (r.referer().unwrap_or("(none)").to_string(), c.eval(v, r)),
            Condition::Param(checks) => {
                let seen: Vec<String> = checks
                    .iter()
                    .map(|(name, _)| match r.param(name) {
                        Some(val) => format!("{name}={val}"),
                        None if r.has_param(name) => format!("{name}="),
                        None => format!("{name} absent"),
                    })
                    .collect();
                (seen.join(" "), c.eval(v, r))
            }
            Condition::Header(checks) => {
                let seen: Vec<String> = checks
                    .iter()
                    .map(|(name, _)| match r.header(name.as_str()) {
                        Some(val) => format!("{name}: {val}"),
                        None => format!("{name} absent"),
                    })
                    .collect();
                (seen.join(" "), c.eval(v, r))
            }
            Condition::Language(_) => (
                r.primary_language().unwrap_or("(none)").to_string(),
                c.eval(v, r),
            ),
            Condition::Method(_) => (r.method.to_string(), c.eval(v, r)),
            Condition::Ja4(_) => (
                r.ja4.unwrap_or("(none: not a TLS connection)").to_string(),
                c.eval(v, r),
            ),
            Condition::Path(_) => (r.path.to_string(), c.eval(v, r)),
            Condition::Unique {
                window_ms, flow, ..
            } => {
                let result = c.eval(v, r);
                let scope = if *flow { "flow" } else { "campaign" };
                let window = duration(*window_ms);
                let seen = match (r.state.get().assumed(), result) {
                    (Some(_), true) => format!("assumed new to the {scope} in {window}"),
                    (Some(_), false) => format!("assumed seen in the {scope} within {window}"),
                    (None, true) => format!("new to the {scope} in {window}"),
                    (None, false) => format!("seen in the {scope} within {window}"),
                };
                (seen, result)
            }
            Condition::Rate(limiter) => {
                let over = limiter.would_be_over(v.ip, std::time::Instant::now());
                let seen = if over {
                    "over the rate"
                } else {
                    "within the rate"
                };
                (seen.to_string(), over)
            }
            Condition::Schedule(s) => {
                let (day, minute) = s.local(r.at.unwrap_or_else(crate::time::now_ms));
                let seen = format!(
                    "{} {:02}:{:02} (UTC{:+03}:{:02})",
                    super::condition::WEEKDAYS[day],
                    minute / 60,
                    minute % 60,
                    s.offset_min / 60,
                    (s.offset_min % 60).abs()
                );
                (seen, c.eval(v, r))
            }
        };
        self.trace.push(Step {
            flow: Some(self.flow.to_string()),
            condition: format!("{path}.{}", c.kind()),
            value,
            result,
        });
        result
    }
}

impl Condition {
    /// The condition's name as written in rule files.
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::All(_) => "all",
            Condition::Any(_) => "any",
            Condition::Not(_) => "not",
            Condition::Country(_) => "country",
            Condition::Region(_) => "region",
            Condition::City(_) => "city",
            Condition::Asn(_) => "asn",
            Condition::AsOrg(_) => "as_org",
            Condition::Anonymous(_) => "anonymous",
            Condition::Os(_) => "os",
            Condition::Browser(_) => "browser",
            Condition::Ip(_) => "ip",
            Condition::IpList(_) => "ip_list",
            Condition::Bot(_) => "bot",
            Condition::Crawler(_) => "crawler",
            Condition::Signal(_) => "signal",
            Condition::Device(_) => "device",
            Condition::Ua(_) => "ua",
            Condition::Referer(_) => "referer",
            Condition::Param(_) => "param",
            Condition::Header(_) => "header",
            Condition::Language(_) => "language",
            Condition::Method(_) => "method",
            Condition::Ja4(_) => "ja4",
            Condition::Path(_) => "path",
            Condition::Schedule(_) => "schedule",
            Condition::Rate(_) => "rate",
            Condition::Unique { .. } => "unique",
        }
    }
}

/// `86400000` ms as `24h`: a window as operators write it.
fn duration(ms: u64) -> String {
    match ms {
        ms if ms % 86_400_000 == 0 && ms >= 172_800_000 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms => format!("{}s", ms / 1000),
    }
}
