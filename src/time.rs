//! UTC calendar arithmetic for events, file names and `schedule` conditions, without a
//! calendar dependency.

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

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-23T10:00:00Z`, `2026-11-23T12:00+02:00`, fractions allowed: Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let s = s.trim();
    let num = |a: usize, b: usize| s.get(a..b).and_then(|t| t.parse::<u32>().ok());
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if s.get(4..5) != Some("-")
        || s.get(7..8) != Some("-")
        || !matches!(s.get(10..11), Some("T" | "t" | " "))
    {
        return None;
    }
    let (h, mi) = (num(11, 13)?, num(14, 16)?);
    let mut rest = s.get(16..)?;
    let mut secs = 0;
    let mut ms = 0;
    if let Some(r) = rest.strip_prefix(':') {
        secs = r.get(..2)?.parse::<u32>().ok()?;
        rest = &r[2..];
        if let Some(r) = rest.strip_prefix('.') {
            let digits = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            let frac = &r[..digits];
            ms = format!("{frac:0<3}").get(..3)?.parse::<u32>().ok()?;
            rest = &r[digits..];
        }
    }
    let offset_min: i64 = match rest {
        "Z" | "z" => 0,
        o => {
            let sign = match o.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let oh: i64 = o.get(1..3)?.parse().ok()?;
            let om: i64 = o.get(4..6)?.parse().ok()?;
            sign * (oh * 60 + om)
        }
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || secs > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let total =
        ((days * 24 + i64::from(h)) * 60 + i64::from(mi) - offset_min) * 60 + i64::from(secs);
    u64::try_from(total * 1000 + i64::from(ms)).ok()
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
        assert_eq!(
            parse_rfc3339("2026-11-22T14:27:47.001Z"),
            Some(1_795_357_667_001)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T16:27:47.001+02:00"),
            Some(1_795_357_667_001)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00Z"), Some(951_782_400_000));
        assert_eq!(parse_rfc3339(&rfc3339(123_456_789)), Some(123_456_789));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
