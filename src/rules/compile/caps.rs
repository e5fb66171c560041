//! A flow's `cap`: how many clicks it may serve, or how many conversions may be attributed
//! to it, per hour, per day (from midnight in a fixed offset) or in total, counted in the
//! process's counter for that campaign, flow, what and window.

use std::path::Path;

use super::schedule::offset;
use super::Compiler;
use crate::rules::model::CapSpec;
use crate::rules::Cap;
use crate::state::{Caps, Counted, Per};
use crate::yaml::At;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapError {
    #[error("needs clicks: N or conversions: N")]
    Nothing,
    #[error("caps clicks or conversions, not both (two flows can cap one each)")]
    Both,
    #[error("{0} must be at least 1 (to stop the flow, remove it)")]
    Zero(&'static str),
    #[error("per {0:?}: use hour, day or total")]
    Per(String),
    #[error("tz {0:?} is not UTC or an offset like +03:00 (zone names are not supported)")]
    Tz(String),
    #[error("tz has no meaning with per: total")]
    TzTotal,
}

/// `(what, limit, per, offset east of UTC in minutes)`.
pub fn check(spec: &CapSpec) -> Result<(Counted, u32, Per, i32), CapError> {
    let (what, limit) = match (spec.clicks, spec.conversions) {
        (Some(_), Some(_)) => return Err(CapError::Both),
        (None, None) => return Err(CapError::Nothing),
        (Some(n), None) => (Counted::Clicks, n),
        (None, Some(n)) => (Counted::Conversions, n),
    };
    if limit == 0 {
        return Err(CapError::Zero(what.as_str()));
    }
    let per = match spec.per.as_deref() {
        None => Per::Day,
        Some(p) => Per::parse(p.trim()).ok_or_else(|| CapError::Per(p.to_string()))?,
    };
    let offset_min = match spec.tz.as_deref().map(str::trim) {
        None | Some("UTC" | "utc" | "Z") => 0,
        Some(_) if per == Per::Total => return Err(CapError::TzTotal),
        Some(tz) => offset(tz).ok_or_else(|| CapError::Tz(tz.to_string()))?,
    };
    Ok((what, limit, per, offset_min))
}

impl Compiler<'_> {
    pub(super) fn cap(
        &mut self,
        file: &Path,
        field: &str,
        campaign: &str,
        flow: &str,
        spec: &At<CapSpec>,
    ) -> Option<Cap> {
        match check(spec) {
            Ok((counts, limit, per, offset_min)) => {
                let key = Caps::key(campaign, flow, counts.as_str(), per, offset_min);
                Some(Cap {
                    limit,
                    counts,
                    counter: self.caps.counter(&key, per, offset_min),
                })
            }
            Err(e) => {
                self.problem(file, spec.span, format!("{field}.cap"), e.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(clicks: Option<u32>, per: Option<&str>, tz: Option<&str>) -> CapSpec {
        CapSpec {
            clicks,
            conversions: None,
            per: per.map(String::from),
            tz: tz.map(String::from),
        }
    }

    #[test]
    fn a_cap_is_clicks_per_window_in_an_offset() {
        let clicks = Counted::Clicks;
        assert_eq!(
            check(&spec(Some(10), None, None)),
            Ok((clicks, 10, Per::Day, 0))
        );
        assert_eq!(
            check(&spec(Some(5), Some("hour"), Some("+05:30"))),
            Ok((clicks, 5, Per::Hour, 330))
        );
        assert_eq!(
            check(&spec(Some(5), Some("total"), None)),
            Ok((clicks, 5, Per::Total, 0))
        );
        let err = |s| check(&s).unwrap_err();
        assert_eq!(err(spec(None, None, None)), CapError::Nothing);
        assert_eq!(err(spec(Some(0), None, None)), CapError::Zero("clicks"));
        assert_eq!(
            err(spec(Some(1), Some("week"), None)),
            CapError::Per("week".into())
        );
        assert_eq!(
            err(spec(Some(1), None, Some("Europe/Moscow"))),
            CapError::Tz("Europe/Moscow".into())
        );
        assert_eq!(
            err(spec(Some(1), Some("total"), Some("+03:00"))),
            CapError::TzTotal
        );
        let conv = |clicks, n| CapSpec {
            conversions: Some(n),
            ..spec(clicks, None, Some("+03:00"))
        };
        assert_eq!(
            check(&conv(None, 50)),
            Ok((Counted::Conversions, 50, Per::Day, 180))
        );
        assert_eq!(err(conv(Some(5), 50)), CapError::Both);
        assert_eq!(err(conv(None, 0)), CapError::Zero("conversions"));
    }
}
