//! The click record of one request: what the decision core knows, turned into the plain
//! names and text the event layer keeps. Shared strings are cloned, nothing is formatted.

use crate::events::{ClickNames, ClickRecord, Outcome, Seen, SourceOf};
use crate::identity::Visitor;
use crate::rules::{Decision, RequestFacts};
use crate::snapshot::Snapshot;

static SEC_GPC: http::HeaderName = http::HeaderName::from_static("sec-gpc");

/// The record `snap` made of this request: `visitor` and `decision` came from it.
pub fn record(
    snap: &Snapshot,
    visitor: Visitor,
    decision: &Decision,
    req: &RequestFacts,
    unique: Option<bool>,
    outcome: Outcome,
) -> ClickRecord {
    let (route, action) = snap.names.route(decision);
    let names = ClickNames {
        campaign: snap.names.campaign(decision).cloned(),
        flow: snap.names.flow(decision).cloned(),
        route: route.clone(),
        action,
        lists: (visitor.ip_lists != 0).then(|| snap.names.lists().clone()),
    };
    let seen = Seen {
        user_agent: req.user_agent(),
        referer: req.referer(),
        host: req.hostname(),
        path: req.path,
        query: req.query,
        language: req.primary_language(),
        gpc: req.header_named(&SEC_GPC).is_some_and(|v| v.trim() == "1"),
        rate_limited: req.rate_limited.get(),
        unique,
        ja4: req.ja4,
    };
    ClickRecord::capture(names, visitor, &seen, outcome)
}

/// The click's traffic source: the first of the rules' sources whose match holds, with the
/// params its URL carries (hashed fields hashed here, before anything keeps them).
pub fn source(snap: &Snapshot, visitor: &Visitor, req: &RequestFacts) -> Option<Box<SourceOf>> {
    let s = snap
        .rules
        .sources
        .iter()
        .find(|s| s.matches(visitor, req))?;
    Some(Box::new(SourceOf {
        name: s.name.clone(),
        params: s.params_of(req),
    }))
}

/// The params as the click store keeps them: a JSON object.
pub fn params_json(s: &SourceOf) -> Box<str> {
    let map: serde_json::Map<String, serde_json::Value> = (s.params.iter())
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(v.as_str())))
        .collect();
    serde_json::Value::Object(map).to_string().into()
}
