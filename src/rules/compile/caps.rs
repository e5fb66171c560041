//! A flow's `cap`: how many clicks it may serve per hour, per day (from midnight in a fixed
//! offset) or in total, counted in the process's counter for that campaign, flow and window.

use std::path::Path;

use super::schedule::offset;
use super::Compiler;
use crate::rules::model::CapSpec;
use crate::rules::Cap;
use crate::state::{Caps, Per};
use crate::yaml::At;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapError {
    #[error("needs clicks: N")]
    Nothing,
    #[error("conversion caps are not built yet; cap clicks for now")]
    Conversions,
    #[error("clicks must be at least 1 (to stop the flow, remove it)")]
    Zero,
    #[error("per {0:?}: use hour, day or total")]
    Per(String),
    #[error("tz {0:?} is not UTC or an offset like +03:00 (zone names are not supported)")]
    Tz(String),
    #[error("tz has no meaning with per: total")]
    TzTotal,
}

/// `(limit, per, offset east of UTC in minutes)`.
pub fn check(spec: &CapSpec) -> Result<(u32, Per, i32), CapError> {
    let limit = match (spec.clicks, spec.conversions) {
        (_, Some(_)) => return Err(CapError::Conversions),
        (None, None) => return Err(CapError::Nothing),
        (Some(0), _) => return Err(CapError::Zero),
        (Some(n), None) => n,
    };
    let per = match spec.per.as_deref() {
        None => Per::Day,
        Some(p) => Per::parse(p.trim()).ok_or_else(|| CapError::Per(p.to_string()))?,
    };
    let offset_min = match spec.tz.as_deref().map(str::trim) {
        None | Some("UTC" | "utc" | "Z") => 0,
        Some(_) if per == Per::Total => return Err(CapError::TzTotal),
        Some(tz) => offset(tz).ok_or_else(|| CapError::Tz(tz.to_string()))?,
    };
    Ok((limit, per, offset_min))
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
            Ok((limit, per, offset_min)) => {
                let key = Caps::key(campaign, flow, "clicks", per, offset_min);
                Some(Cap {
                    limit,
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
        assert_eq!(check(&spec(Some(10), None, None)), Ok((10, Per::Day, 0)));
        assert_eq!(
            check(&spec(Some(5), Some("hour"), Some("+05:30"))),
            Ok((5, Per::Hour, 330))
        );
        assert_eq!(
            check(&spec(Some(5), Some("total"), None)),
            Ok((5, Per::Total, 0))
        );
        let err = |s| check(&s).unwrap_err();
        assert_eq!(err(spec(None, None, None)), CapError::Nothing);
        assert_eq!(err(spec(Some(0), None, None)), CapError::Zero);
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
        let conv = CapSpec {
            conversions: Some(50),
            ..spec(None, None, None)
        };
        assert_eq!(err(conv), CapError::Conversions);
    }
}
