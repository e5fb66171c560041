//! One request answered by the decision core, as a value: who the visitor is, what the rules
//! decided, and what to do about it. The proxy carries the answer out; `explain`, rule tests
//! and the decision bench read the same value, so none of them rebuilds identity → rules →
//! action on its own.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bytes::Bytes;
use http::HeaderValue;

use super::Snapshot;
use crate::identity::{ClientHints, Visitor};
use crate::rules::{Action, Decision, RequestFacts, Route, Step, Upstream, Vars};

/// What the core says about one request.
pub struct Answer<'s, 'r> {
    pub visitor: Visitor,
    pub decision: Decision,
    pub route: &'s Route,
    /// The campaign's id and the flow's name; empty when no campaign or flow decided.
    pub campaign: &'s str,
    pub flow: &'s str,
    /// The route the shadow rules chose, when shadow rules are loaded (serving only).
    pub shadow: Option<&'s str>,
    pub todo: Todo<'s, 'r>,
}

/// What to do with the request.
pub enum Todo<'s, 'r> {
    /// Answer with the route's own page.
    Page {
        status: u16,
        content_type: &'s HeaderValue,
        body: &'s Bytes,
    },
    /// Send the visitor on, to a URL rendered for this request.
    Redirect { status: u16, location: String },
    /// Hand the request to a pool of upstreams, at `target`.
    Proxy {
        upstream: &'s Upstream,
        target: Target<'s, 'r>,
    },
}

/// The upstream's target in origin form: the route's prefix, then the visitor's canonical path
/// (which has no dot segment left to climb out of the prefix), then the query. Kept in parts,
/// so the common case, a route without a prefix, needs no new string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'s, 'r> {
    pub prefix: &'s str,
    pub path: &'r str,
    pub query: Option<&'r str>,
}

impl Target<'_, '_> {
    /// Whether the target is the visitor's own origin-form path, unchanged.
    pub fn is_as_sent(&self, raw_path: &str) -> bool {
        self.prefix.is_empty() && self.path == raw_path
    }

    /// The target as one string, allocated once at its length (`Display` would grow it
    /// piece by piece: 1k instructions more per proxied request).
    pub fn to_path_and_query(&self) -> String {
        let query = self.query.unwrap_or("");
        let mut s = String::with_capacity(self.prefix.len() + self.path.len() + query.len() + 1);
        s.push_str(self.prefix);
        s.push_str(self.path);
        if self.query.is_some() {
            s.push('?');
            s.push_str(query);
        }
        s
    }
}

impl Snapshot {
    /// The answer for a request from `ip` (already resolved from trusted proxies): counts the
    /// request against `rate` conditions and asks the shadow rules too, as serving does.
    pub fn answer<'s, 'r>(
        &'s self,
        ip: IpAddr,
        facts: &RequestFacts<'r>,
        click_id: &str,
    ) -> Answer<'s, 'r> {
        let visitor = self.visitor(ip, facts);
        let decision = self.rules.evaluate(&visitor, facts);
        let shadow = self.shadow.as_ref().map(|shadow| {
            // The shadow rules count their own rates; what the live rules found stands. They
            // read the live state (unique, caps) but never count a cap's click.
            let limited = facts.rate_limited.get();
            let state = facts.state.get();
            facts.state.set(state.shadowed());
            let d = shadow.evaluate(&visitor, facts);
            facts.state.set(state);
            facts.rate_limited.set(limited);
            shadow.route(d.route).name.as_str()
        });
        self.carry_out(visitor, decision, shadow, facts, click_id, None)
    }

    /// The answer to a lander's click-through in campaign `ci`: `click` is the lander's
    /// click as the store found it (`None`: unknown or expired), whose id and kept
    /// parameters the redirect's macros see. `fresh_id` is the request's own, for the
    /// fallback of an unknown click.
    pub fn answer_click_through<'s, 'r>(
        &'s self,
        ip: IpAddr,
        facts: &RequestFacts<'r>,
        ci: usize,
        click: Option<&crate::state::StoredClick>,
        params: Option<&BTreeMap<String, String>>,
        fresh_id: &str,
    ) -> Answer<'s, 'r> {
        let visitor = self.visitor(ip, facts);
        let names = click.map(|c| {
            let campaign = c.campaign.as_deref().unwrap_or("");
            (campaign, c.flow.as_deref().unwrap_or(""))
        });
        let decision = self.rules.continue_click(ci, names, &visitor, facts);
        let id = click.map_or(fresh_id, |c| c.click_id.as_str());
        self.carry_out(visitor, decision, None, facts, id, params)
    }

    /// The same answer without counting anything, and the steps the rules took to it: what
    /// `explain` and rule tests show. A click-through finds `click` (assumed; `None`: an
    /// unknown click), never the live store.
    pub fn answer_traced<'s, 'r>(
        &'s self,
        ip: IpAddr,
        facts: &RequestFacts<'r>,
        click_id: &str,
        click: Option<&crate::state::AssumedClick>,
    ) -> (Answer<'s, 'r>, Vec<Step>) {
        let visitor = self.visitor(ip, facts);
        if let Some(ci) = self.rules.click_through(facts) {
            let campaign = self.rules.campaigns[ci].id.as_str();
            let names = click.map(|c| (campaign, c.flow.as_str()));
            let decision = self.rules.continue_click(ci, names, &visitor, facts);
            let step = Step {
                flow: click.map(|c| c.flow.clone()),
                condition: "click_through".into(),
                value: match click {
                    Some(c) => format!("assumed the lander's click of flow {:?}", c.flow),
                    None => "assumed an unknown click".into(),
                },
                result: decision.flow.is_some(),
            };
            let params = click.map(|c| &c.params);
            let answer = self.carry_out(visitor, decision, None, facts, click_id, params);
            return (answer, vec![step]);
        }
        let (decision, trace) = self.rules.explain(&self.intel, &visitor, facts);
        (
            self.carry_out(visitor, decision, None, facts, click_id, None),
            trace,
        )
    }

    fn visitor(&self, ip: IpAddr, facts: &RequestFacts) -> Visitor {
        let hints = ClientHints::from_headers(facts.headers);
        self.intel.visitor(ip, facts.user_agent(), hints)
    }

    fn carry_out<'s, 'r>(
        &'s self,
        visitor: Visitor,
        decision: Decision,
        shadow: Option<&'s str>,
        facts: &RequestFacts<'r>,
        click_id: &str,
        params: Option<&BTreeMap<String, String>>,
    ) -> Answer<'s, 'r> {
        let route = self.rules.route(decision.route);
        let campaign = self.rules.campaign_id(&decision).unwrap_or("");
        let flow = self.rules.flow_name(&decision).unwrap_or("");
        let todo = match &route.action {
            Action::Respond {
                status,
                body,
                content_type,
            } => Todo::Page {
                status: *status,
                content_type,
                body,
            },
            Action::Redirect {
                to,
                status,
                keep_query,
            } => {
                let vars = Vars {
                    click_id,
                    country: visitor.country.as_ref().map(|c| c.as_str()),
                    asn: visitor.asn,
                    campaign,
                    flow,
                    route: &route.name,
                    params,
                };
                Todo::Redirect {
                    status: *status,
                    location: to.render(&vars, facts, *keep_query),
                }
            }
            Action::Proxy { upstream, path } => Todo::Proxy {
                upstream: &self.rules.upstreams[*upstream],
                target: Target {
                    prefix: path,
                    path: facts.path,
                    query: facts.query,
                },
            },
        };
        Answer {
            visitor,
            decision,
            route,
            campaign,
            flow,
            shadow,
            todo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_prefix_path_and_query() {
        let t = Target {
            prefix: "/offer",
            path: "/lp/a",
            query: Some("x=1"),
        };
        assert_eq!(t.to_path_and_query(), "/offer/lp/a?x=1");
        assert!(!t.is_as_sent("/lp/a"));
        let t = Target {
            prefix: "",
            path: "/lp/a",
            query: None,
        };
        assert_eq!(t.to_path_and_query(), "/lp/a");
        assert!(t.is_as_sent("/lp/a") && !t.is_as_sent("/lp/./a"));
    }
}
