//! The conditions that judge what a visitor claims: `crawler` (a search-engine crawler's claim
//! against its published ranges) and `signal` (the user agent against the rest of the request).

use super::conditions::{each, Checked, ConditionError};
use super::known_or_nearest;
use crate::identity::CrawlerVerdict;
use crate::rules::condition::Condition;
use crate::rules::signals;

pub(super) fn crawler(verdicts: &[String]) -> Checked {
    let names = CrawlerVerdict::NAMES;
    let bits = each(verdicts, |n| match names.iter().position(|k| k == n) {
        Some(i) => Ok(1u8 << i),
        None => Err(ConditionError::UnknownValue {
            value: n.clone(),
            known: known_or_nearest(n, names.iter()),
        }),
    })?;
    Ok(Condition::Crawler(bits.into_iter().fold(0, |m, b| m | b)))
}

pub(super) fn signal(names: &[String]) -> Checked {
    let bits = each(names, |n| {
        signals::bit(n).ok_or_else(|| ConditionError::UnknownValue {
            value: n.clone(),
            known: known_or_nearest(n, signals::NAMES.iter()),
        })
    })?;
    Ok(Condition::Signal(bits.into_iter().fold(0, |m, b| m | b)))
}
