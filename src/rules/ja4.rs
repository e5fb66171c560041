//! The `ja4` condition: TLS client fingerprints, each written whole
//! (`t13d1516h2_8daaf6152771_b186095e22b6`) or as a prefix ending in `*` (`t13d1516h2_*`:
//! any client with that version, SNI, counts and ALPN).

use crate::identity::ja4::LEN;

#[derive(Debug)]
pub struct Ja4List {
    /// Sorted, for a binary search.
    exact: Box<[Box<str>]>,
    prefixes: Box<[Box<str>]>,
}

impl Ja4List {
    /// Every value that is not a fingerprint or a prefix of one is an error (its message).
    pub fn parse(values: &[String]) -> Result<Ja4List, Vec<String>> {
        let (mut exact, mut prefixes, mut bad) = (Vec::new(), Vec::new(), Vec::new());
        for v in values {
            match v.strip_suffix('*') {
                Some(p) if p.len() < LEN && shaped(p) => prefixes.push(p.into()),
                None if v.len() == LEN && shaped(v) => exact.push(v.as_str().into()),
                _ => bad.push(format!(
                    "{v:?} is not a JA4 fingerprint like t13d1516h2_8daaf6152771_b186095e22b6 \
                     (or a prefix of one ending in *)"
                )),
            }
        }
        if !bad.is_empty() {
            return Err(bad);
        }
        exact.sort_unstable();
        exact.dedup();
        Ok(Ja4List {
            exact: exact.into(),
            prefixes: prefixes.into(),
        })
    }

    pub fn matches(&self, ja4: &str) -> bool {
        self.exact.binary_search_by(|e| (**e).cmp(ja4)).is_ok()
            || self.prefixes.iter().any(|p| ja4.starts_with(&**p))
    }
}

/// Each character is one the fingerprint may have at its place: letters and digits in the
/// first part (the ALPN characters keep their case), `_` between the parts, and lowercase hex
/// in the two hashes.
fn shaped(s: &str) -> bool {
    s.bytes().enumerate().all(|(i, b)| match i {
        10 | 23 => b == b'_',
        0..10 => b.is_ascii_alphanumeric(),
        _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(values: &[&str]) -> Result<Ja4List, Vec<String>> {
        Ja4List::parse(&values.iter().map(|v| v.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn whole_fingerprints_and_prefixes_match_and_nothing_else_does() {
        let l = list(&["t13d1516h2_8daaf6152771_b186095e22b6", "t12d*"]).unwrap();
        assert!(l.matches("t13d1516h2_8daaf6152771_b186095e22b6"));
        assert!(l.matches("t12d4605h2_85626a9a5f7f_aaf95bb78ec9"));
        assert!(!l.matches("t13d1516h2_8daaf6152771_e5627efa2ab1"));
        assert!(!l.matches("t13d1516h2_8daaf6152771_b186095e22b"));
        assert!(!l.matches(""));
    }

    #[test]
    fn what_is_not_a_fingerprint_is_named() {
        let bad = list(&[
            "t13d1516h2_8daaf6152771_b186095e22b6",
            "t13d1516h2_8DAAF6152771_b186095e22b6",
            "t13d1516h2-8daaf6152771-b186095e22b6",
            "t13d1516h2_8daaf6152771",
            "chrome",
            "t13d1516h2_8daaf6152771_b186095e22b6x*",
        ])
        .unwrap_err();
        assert_eq!(bad.len(), 5, "{bad:?}");
        assert!(bad[0].contains("\"t13d1516h2_8DAAF6152771_b186095e22b6\" is not a JA4"));
        assert!(list(&["t13d1516h2_8daaf6152771_*", "*"]).is_ok());
    }
}
