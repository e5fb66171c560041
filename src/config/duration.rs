//! Durations as operators write them (`500ms`, `2s`, `1m`, `6h`, `90d`, or a bare number of
//! seconds) and sizes (`64KiB`, `256MB`, `1GiB`, or a bare number of bytes).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Duration);

/// Text that is not a duration or a size; serde reports it with the field's line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{text:?} is not {expected}")]
    Unknown {
        text: String,
        expected: &'static str,
    },
    #[error("{0:?} is too large")]
    TooLarge(String),
}

impl Timeout {
    pub const fn from_secs(s: u64) -> Timeout {
        Timeout(Duration::from_secs(s))
    }

    pub fn parse(s: &str) -> Result<Timeout, UnitError> {
        const MS: [(&str, u64); 6] = [
            ("ms", 1),
            ("", 1000),
            ("s", 1000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
        ];
        scaled(s, &MS, "a duration like 500ms, 2s, 1m, 6h or 90d")
            .map(|ms| Timeout(Duration::from_millis(ms)))
    }
}

/// A number with an optional unit from `units` (unit, multiplier), checked for overflow.
fn scaled(s: &str, units: &[(&str, u64)], expected: &'static str) -> Result<u64, UnitError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || UnitError::Unknown {
        text: s.to_string(),
        expected,
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let k = units
        .iter()
        .find(|(u, _)| *u == unit.trim())
        .map(|(_, k)| *k)
        .ok_or_else(bad)?;
    n.checked_mul(k)
        .ok_or_else(|| UnitError::TooLarge(s.to_string()))
}

impl<'de> serde::Deserialize<'de> for Timeout {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(
            d,
            "a duration like 500ms, 2s or 1m",
            |n| Timeout(Duration::from_secs(n)),
            Timeout::parse,
        )
    }
}

/// A value written as a bare number or as text with a unit.
fn number_or_text<'de, D, T>(
    d: D,
    expecting: &'static str,
    from_number: fn(u64) -> T,
    from_text: fn(&str) -> Result<T, UnitError>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct V<T> {
        expecting: &'static str,
        from_number: fn(u64) -> T,
        from_text: fn(&str) -> Result<T, UnitError>,
    }
    impl<T> serde::de::Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
            Ok((self.from_number)(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
            u64::try_from(v)
                .map(self.from_number)
                .map_err(|_| E::custom("cannot be negative"))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            (self.from_text)(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V {
        expecting,
        from_number,
        from_text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(
            Timeout::parse("500ms").unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!(Timeout::parse("2s").unwrap().0, Duration::from_secs(2));
        assert_eq!(Timeout::parse("1m").unwrap().0, Duration::from_secs(60));
        assert_eq!(Timeout::parse("7").unwrap().0, Duration::from_secs(7));
        assert!(Timeout::parse("soon").is_err());
        assert_eq!(
            Timeout::parse("90d").unwrap().0,
            Duration::from_secs(90 * 86_400)
        );
        assert!(Timeout::parse("5w").is_err());
        // Operator input never overflows into a panic.
        assert_eq!(
            Timeout::parse("99999999999999999d")
                .unwrap_err()
                .to_string(),
            "\"99999999999999999d\" is too large"
        );
        assert_eq!(
            Timeout::parse("soon").unwrap_err().to_string(),
            "\"soon\" is not a duration like 500ms, 2s, 1m, 6h or 90d"
        );
    }
}

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, UnitError> {
        const BYTES: [(&str, u64); 8] = [
            ("", 1),
            ("B", 1),
            ("KB", 1_000),
            ("KiB", 1 << 10),
            ("MB", 1_000_000),
            ("MiB", 1 << 20),
            ("GB", 1_000_000_000),
            ("GiB", 1 << 30),
        ];
        scaled(s, &BYTES, "a size like 64KiB, 256MB or 1GiB").map(ByteSize)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(
            d,
            "a size like 64KiB, 256MB or 1GiB",
            ByteSize,
            ByteSize::parse,
        )
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("64KiB").unwrap().0, 65_536);
        assert_eq!(ByteSize::parse("256MB").unwrap().0, 256_000_000);
        assert_eq!(ByteSize::parse("1GiB").unwrap().0, 1 << 30);
        assert_eq!(ByteSize::parse("100").unwrap().0, 100);
        assert!(ByteSize::parse("lots").is_err());
    }
}
