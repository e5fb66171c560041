//! The `schedule` condition: days of the week and hours, in a fixed offset from UTC.

use crate::rules::condition::{Schedule, WEEKDAYS};
use crate::rules::model::ScheduleSpec;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("{0:?} is not a day (mon, tue, ... sun)")]
    Day(String),
    #[error("hours {0:?} is not a window like \"09:00-17:30\" or \"22-06\"")]
    Hours(String),
    #[error("hours {0:?} is an empty window: it starts where it ends")]
    EmptyWindow(String),
    #[error("tz {0:?} is not UTC or an offset like +02:00 (zone names are not supported)")]
    Tz(String),
    #[error("needs days, hours or both")]
    Empty,
}

/// Full day names; a day may be written as any start of one of at least three letters.
const DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

pub(super) fn schedule(spec: &ScheduleSpec) -> Result<Schedule, ScheduleError> {
    let mut days = 0u8;
    for d in spec.days.iter().flat_map(|d| d.0.iter()) {
        days |= 1 << day(d)?;
    }
    let window = spec.hours.as_deref().map(hours).transpose()?;
    let offset_min = match spec.tz.as_deref().map(str::trim) {
        None | Some("UTC" | "utc" | "Z") => 0,
        Some(tz) => offset(tz).ok_or_else(|| ScheduleError::Tz(tz.to_string()))?,
    };
    if days == 0 && window.is_none() {
        return Err(ScheduleError::Empty);
    }
    Ok(Schedule {
        days,
        window,
        offset_min,
    })
}

/// Monday is 0.
fn day(d: &str) -> Result<usize, ScheduleError> {
    let key = d.trim().to_ascii_lowercase();
    debug_assert!(DAY_NAMES
        .iter()
        .zip(WEEKDAYS)
        .all(|(n, w)| n.starts_with(w)));
    DAY_NAMES
        .iter()
        .position(|name| key.len() >= 3 && name.starts_with(&key))
        .ok_or_else(|| ScheduleError::Day(d.to_string()))
}

/// `[from, to)` in minutes of the day.
fn hours(w: &str) -> Result<(u16, u16), ScheduleError> {
    let bad = || ScheduleError::Hours(w.to_string());
    let (a, b) = w.split_once('-').ok_or_else(bad)?;
    let window = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
    // `from == to` would never hold (or, read as "all day", hide a typo): refused.
    if window.0 == window.1 {
        return Err(ScheduleError::EmptyWindow(w.to_string()));
    }
    Ok(window)
}

/// `HH:MM` or `HH` as minutes of the day; `24:00` is the end of the day.
fn minute(t: &str) -> Option<u16> {
    let t = t.trim();
    let (h, m) = t.split_once(':').unwrap_or((t, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
}

/// Minutes east of UTC for `+02:00` or `-5` (hours and minutes are separated by `:`).
pub(super) fn offset(tz: &str) -> Option<i32> {
    let sign = match tz.get(..1) {
        Some("+") => 1,
        Some("-") => -1,
        _ => return None,
    };
    let rest = &tz[1..];
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h >= 0 && m >= 0 && h <= 14 && m <= 59).then_some(sign * (h * 60 + m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::OneOrMany;

    fn spec(days: &[&str], hours: Option<&str>, tz: Option<&str>) -> ScheduleSpec {
        ScheduleSpec {
            days: (!days.is_empty())
                .then(|| OneOrMany(days.iter().map(|d| d.to_string()).collect())),
            hours: hours.map(String::from),
            tz: tz.map(String::from),
        }
    }

    #[test]
    fn days_hours_and_offsets() {
        let s = schedule(&spec(
            &["mon", "Tues", "friday"],
            Some("09:00-17:30"),
            Some("+02:00"),
        ));
        let s = s.unwrap();
        assert_eq!(
            (s.days, s.window, s.offset_min),
            (0b1_0011, Some((540, 1050)), 120)
        );
        let s = schedule(&spec(&[], Some("22-06"), Some("-05:30"))).unwrap();
        assert_eq!(
            (s.days, s.window, s.offset_min),
            (0, Some((1320, 360)), -330)
        );
        assert_eq!(
            schedule(&spec(&[], Some("0-24"), None)).unwrap().window,
            Some((0, 1440))
        );
    }

    #[test]
    fn what_is_not_a_schedule_is_refused_by_name() {
        let err = |d: &[&str], h: Option<&str>, tz: Option<&str>| schedule(&spec(d, h, tz)).err();
        assert_eq!(
            err(&["monkey"], None, None),
            Some(ScheduleError::Day("monkey".into()))
        );
        assert_eq!(
            err(&["mo"], None, None),
            Some(ScheduleError::Day("mo".into()))
        );
        assert_eq!(
            err(&[], Some("9-5pm"), None),
            Some(ScheduleError::Hours("9-5pm".into()))
        );
        assert_eq!(
            err(&[], Some("25-06"), None),
            Some(ScheduleError::Hours("25-06".into()))
        );
        assert_eq!(
            err(&[], Some("+9-17"), None),
            Some(ScheduleError::Hours("+9-17".into()))
        );
        assert_eq!(
            err(&[], Some("09:00-09:00"), None),
            Some(ScheduleError::EmptyWindow("09:00-09:00".into()))
        );
        assert_eq!(
            err(&["sat"], None, Some("Europe/Berlin")),
            Some(ScheduleError::Tz("Europe/Berlin".into()))
        );
        assert_eq!(
            err(&["sat"], None, Some("+15:00")),
            Some(ScheduleError::Tz("+15:00".into()))
        );
        assert_eq!(err(&[], None, None), Some(ScheduleError::Empty));
    }
}
