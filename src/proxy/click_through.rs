//! A lander's click-through (`campaigns[].click_path`): the request continues the lander's
//! click, found by the click cookie or, for browsers without cookies, `?cid=`. Its event is
//! an `lp_click`, not a click of its own.

use std::collections::BTreeMap;

use http::HeaderMap;

use crate::events::LpClickEvent;
use crate::rules::Decision;
use crate::snapshot::Snapshot;
use crate::state::{State, StoredClick, VISITOR_DEADLINE};
use crate::url::{percent_decode, query_pairs};

/// The lander's click, if the store knows it as a click of `campaign`: the click cookie's
/// first, then `?cid=`'s.
pub async fn find(
    state: &State,
    headers: &HeaderMap,
    query: Option<&str>,
    campaign: &str,
) -> Option<StoredClick> {
    let ours = |c: &StoredClick| c.campaign.as_deref() == Some(campaign);
    if let Some(id) = state.cookie_click(headers) {
        let mut buf = [0u8; 36];
        let id = id.hyphenated().encode_lower(&mut buf);
        if let Some(c) = state.click(id, VISITOR_DEADLINE).await.filter(ours) {
            return Some(c);
        }
    }
    let cid = query_pairs(query?).find(|(k, _)| *k == "cid")?.1;
    state
        .click(&percent_decode(cid), VISITOR_DEADLINE)
        .await
        .filter(ours)
}

/// The first click's kept parameters, for the redirect's `{param:NAME}`.
pub fn params(click: &StoredClick) -> BTreeMap<String, String> {
    serde_json::from_str(&click.query).unwrap_or_default()
}

/// The click-through's event, once its status is known.
pub fn event(
    snap: &Snapshot,
    d: &Decision,
    lander: Option<&StoredClick>,
    status: u16,
) -> LpClickEvent {
    let (route, action) = snap.names.route(d);
    LpClickEvent {
        ts: crate::time::rfc3339(crate::time::now_ms()),
        click_id: lander.map(|c| c.click_id.clone()).unwrap_or_default(),
        campaign: snap.names.campaign(d).map(|c| c.to_string()),
        flow: snap.names.flow(d).map(|f| f.to_string()),
        route: route.to_string(),
        action: action.to_string(),
        status,
        unknown_click: lander.is_none(),
    }
}
