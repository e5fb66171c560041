//! The click record of one request: what the decision core knows, turned into the plain
//! names and text the event layer keeps. Shared strings are cloned, nothing is formatted.

use crate::events::{ClickNames, ClickRecord, Outcome, Seen};
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
