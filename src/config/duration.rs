//! Durations as operators write them (`500ms`, `2s`, `1m`, `6h`, `90d`, or a bare number of
//! seconds) and sizes (`64KiB`, `256MB`, `1GiB`, or a bare number of bytes).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Duration);

impl Timeout {
    pub const fn from_secs(s: u64) -> Timeout {
        Timeout(Duration::from_secs(s))
    }

    pub fn parse(s: &str) -> Result<Timeout, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like 500ms, 2s or 1m"))?;
        let d = match unit.trim() {
            "ms" => Duration::from_millis(n),
            "" | "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86_400),
            _ => {
                return Err(format!(
                    "{s:?} is not a duration like 500ms, 2s, 1m, 6h or 90d"
                ))
            }
        };
        Ok(Timeout(d))
    }
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
    from_text: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct V<T> {
        expecting: &'static str,
        from_number: fn(u64) -> T,
        from_text: fn(&str) -> Result<T, String>,
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
    }
}

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a size like 64KiB, 256MB or 1GiB"))?;
        let k = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            _ => return Err(format!("{s:?} is not a size like 64KiB, 256MB or 1GiB")),
        };
        n.checked_mul(k)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?} is too large"))
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
