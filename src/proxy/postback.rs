//! Conversions reported by a tracker: `GET <postback.path>?click_id=…&payout=…&status=…`.
//! Each is attributed to its click through the click store, recorded once per click and
//! status, counted by its flow's conversion cap, and handed on to its traffic source.

use super::Gateway;
use crate::events::{ConversionEvent, Record};
use crate::snapshot::Postback;
use crate::state::{StoredClick, POSTBACK_DEADLINE};
use crate::url::{percent_decode, query_pairs};

/// Attributes the conversion to its click and records it: a click the store does not know
/// (or did not find in time) is recorded as unattributed, never dropped. The same click and
/// status again is a repeat: no second event, count or forward.
pub async fn record(gw: &Gateway, mut event: ConversionEvent) {
    let click = gw.state.click(&event.click_id, POSTBACK_DEADLINE).await;
    match &click {
        Some(c) => {
            event.campaign = c.campaign.clone();
            event.flow = c.flow.clone();
            event.route = Some(c.route.clone());
            event.source = c.source.clone();
        }
        None => event.unattributed = true,
    }
    let status = event.conversion_status.as_deref().unwrap_or("");
    // A store that cannot say whether it is a repeat: recorded (at least once).
    let first = (gw.state)
        .converted(&event.click_id, status, POSTBACK_DEADLINE)
        .await;
    if first == Some(false) {
        log::debug!("postback: a repeated conversion, counted once");
        return;
    }
    if let Some(c) = &click {
        if let (Some(campaign), Some(flow)) = (&c.campaign, &c.flow) {
            let rules = &gw.live.current().rules;
            rules.count_conversion(campaign, flow, crate::time::now_ms());
        }
        forward(c, &event);
    }
    gw.events.send(Record::Conversion(event));
}

/// Sends an attributed conversion on to its click's traffic source (`sources[].postback`).
/// Called once per click and status, before the conversion's event is sent; must not wait
/// (queue the delivery). The forwarder is built with sources; until then there is nowhere
/// to send it.
pub fn forward(click: &StoredClick, conversion: &ConversionEvent) {
    let _ = (click, conversion);
}

/// A conversion from `?click_id=...&payout=...&currency=...&status=...&token=...`, or the
/// status and message the tracker gets instead.
pub fn conversion(
    pb: &Postback,
    query: Option<&str>,
) -> Result<ConversionEvent, (u16, &'static str)> {
    let mut click_id = None;
    let (mut payout, mut currency, mut status, mut token) = (None, None, None, None);
    for (k, v) in query_pairs(query.unwrap_or("")) {
        let v = percent_decode(v);
        match k {
            "click_id" | "cid" | "subid" => click_id = Some(v.into_owned()),
            "payout" | "amount" | "sum" => payout = Some(v.into_owned()),
            "currency" => currency = Some(v.into_owned()),
            "status" => status = Some(v.into_owned()),
            "token" => token = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Some(want) = &pb.token {
        let given = token.unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), want.as_bytes()) {
            return Err((403, "bad token\n"));
        }
    }
    let click_id = click_id
        .filter(|c| !c.is_empty() && c.len() <= 64)
        .ok_or((400, "click_id is required\n"))?;
    let payout = match payout.filter(|p| !p.is_empty()) {
        Some(p) => Some(
            p.parse::<f64>()
                .ok()
                .filter(|p| p.is_finite())
                .ok_or((400, "payout must be a number\n"))?,
        ),
        None => None,
    };
    let short = |s: Option<String>| {
        s.filter(|s| !s.is_empty())
            .map(|s| s.chars().take(32).collect())
    };
    Ok(ConversionEvent {
        ts: crate::time::rfc3339(crate::time::now_ms()),
        click_id,
        payout,
        currency: short(currency),
        conversion_status: short(status),
        ..ConversionEvent::default()
    })
}

/// Compares secrets without leaking, through timing, how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn any_query_is_a_conversion_or_a_refusal_never_a_panic(
            query in "[a-z_=&%0-9A-F.+-]{0,120}",
            token in proptest::option::of("[a-z0-9]{1,8}"),
        ) {
            match conversion(&pb(token.as_deref()), Some(&query)) {
                Ok(c) => {
                    prop_assert!(!c.click_id.is_empty() && c.click_id.len() <= 64);
                    prop_assert!(c.payout.is_none_or(f64::is_finite));
                }
                Err((status, _)) => prop_assert!(status == 400 || status == 403),
            }
        }
    }

    fn pb(token: Option<&str>) -> Postback {
        Postback {
            path: "/postback".into(),
            token: token.map(str::to_string),
        }
    }

    #[test]
    fn a_tracker_template_maps_onto_a_conversion() {
        let c = conversion(&pb(None), Some("cid=abc&amount=1.5&status=approved")).unwrap();
        assert_eq!(c.click_id, "abc");
        assert_eq!(c.payout, Some(1.5));
        assert_eq!(c.conversion_status.as_deref(), Some("approved"));
    }

    #[test]
    fn a_wrong_token_a_missing_click_id_and_a_bad_payout_are_refused() {
        assert_eq!(
            conversion(&pb(Some("s3")), Some("click_id=a&token=s4"))
                .unwrap_err()
                .0,
            403
        );
        assert_eq!(conversion(&pb(None), Some("payout=1")).unwrap_err().0, 400);
        assert_eq!(
            conversion(&pb(None), Some("click_id=a&payout=NaN"))
                .unwrap_err()
                .0,
            400
        );
    }
}
