//! Durations as operators write them: `500ms`, `2s`, `1m`, or a bare number of seconds.

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
            _ => return Err(format!("{s:?} is not a duration like 500ms, 2s or 1m")),
        };
        Ok(Timeout(d))
    }
}

impl<'de> serde::Deserialize<'de> for Timeout {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Timeout;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration like 500ms, 2s or 1m")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Timeout, E> {
                Ok(Timeout(Duration::from_secs(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Timeout, E> {
                u64::try_from(v)
                    .map(|v| Timeout(Duration::from_secs(v)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timeout, E> {
                Timeout::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
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
        assert!(Timeout::parse("5h").is_err());
    }
}
