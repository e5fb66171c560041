//! What a conversion's postback may say, gathered once: its click's (id, campaign, flow, the
//! source's params as the store kept them), its own (payout, currency, status, time), and
//! extra parameters of the conversion postback a source names, hashed when it says so.

use crate::events::ConversionEvent;
use crate::rules::sources::{hash_value, Facts, Source};
use crate::rules::Rules;
use crate::state::StoredClick;
use crate::url::{percent_decode, query_pairs};

/// Parameters the conversion postback reads for itself (`proxy/postback.rs`).
const OWN: &[&str] = &[
    "click_id", "cid", "subid", "payout", "amount", "sum", "currency", "status", "token",
];

/// The conversion's id: the same for a repeat of one click's conversion with one status, so
/// a source that got it once can tell the repeat (the `Idempotency-Key` header).
pub fn conversion_id(click_id: &str, status: Option<&str>) -> String {
    let v = format!("{click_id}\n{}", status.unwrap_or(""));
    let mut h = hash_value_raw(&v);
    h.truncate(32);
    h
}

fn hash_value_raw(v: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(v.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Extra parameters of a conversion postback that some source names: under `hash:` (kept only
/// as the hash, from this moment on) or as a field of its `params`. Anything else is not kept.
pub fn extras(rules: &Rules, query: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in query_pairs(query.unwrap_or("")) {
        if OWN.contains(&k) || out.iter().any(|(x, _)| x == k) {
            continue;
        }
        let hashed = rules.sources.iter().any(|s| s.hashes(k));
        let named = (rules.sources.iter()).any(|s| s.params.iter().any(|(f, _)| f == k));
        let v = percent_decode(v);
        let value = if hashed {
            hash_value(&v)
        } else if named {
            Some(v.chars().take(256).collect())
        } else {
            None
        };
        if let Some(value) = value {
            out.push((k.to_string(), value));
        }
    }
    out
}

/// The facts of one conversion for `source`'s postback.
pub fn gather(
    source: &Source,
    click: &StoredClick,
    conversion: &ConversionEvent,
    extras: &[(String, String)],
) -> Facts {
    let mut facts = Facts::new();
    if let Ok(serde_json::Value::Object(params)) = serde_json::from_str(&click.source_params) {
        for (k, v) in params {
            if let serde_json::Value::String(v) = v {
                facts.insert(k, v);
            }
        }
    }
    // A conversion's extras fill what the click URL did not carry.
    for (k, v) in extras {
        let ours = source.hashes(k) || source.params.iter().any(|(f, _)| f == k);
        if ours {
            facts.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            facts.insert(k.to_string(), v);
        }
    };
    put("click_id", Some(click.click_id.clone()));
    put("campaign", click.campaign.clone());
    put("flow", click.flow.clone());
    put("payout", conversion.payout.map(|p| p.to_string()));
    put("currency", conversion.currency.clone());
    put("status", conversion.conversion_status.clone());
    let id = conversion_id(&click.click_id, conversion.conversion_status.as_deref());
    put("conversion_id", Some(id));
    put("ts", Some(conversion.ts.clone()));
    let ms = crate::time::parse_rfc3339(&conversion.ts).unwrap_or_else(crate::time::now_ms);
    put("ts_unix", Some((ms / 1000).to_string()));
    // Google Ads' `conversion_date_time`: `yyyy-mm-dd hh:mm:ss+00:00`.
    let rfc = crate::time::rfc3339(ms);
    put(
        "datetime",
        Some(format!("{} {}+00:00", &rfc[..10], &rfc[11..19])),
    );
    facts
}
