//! UTC timestamps for events and file names, without a calendar dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// `(year, month, day, seconds of day, milliseconds)` of a Unix time in milliseconds.
fn civil(ms: u64) -> (i64, u32, u32, u64, u64) {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs % 86_400, ms % 1000)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// RFC 3339 in UTC with milliseconds: `2026-11-22T14:27:47.123Z`.
pub fn rfc3339(ms: u64) -> String {
    let (y, mo, d, s, milli) = civil(ms);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `2026-11-22`, for daily files.
pub fn date(ms: u64) -> String {
    let (y, mo, d, _, _) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02}")
}

/// `2026-11-22T14`, for hourly files.
pub fn hour(ms: u64) -> String {
    let (y, mo, d, s, _) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02}T{:02}", s / 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_357_667_001), "2026-11-22T14:27:47.001Z");
        assert_eq!(date(1_795_357_667_001), "2026-11-22");
        assert_eq!(hour(1_795_357_667_001), "2026-11-22T14");
    }
}
