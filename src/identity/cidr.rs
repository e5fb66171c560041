//! Sets of IP networks, compiled once into merged, sorted ranges and searched by bisection:
//! a lookup touches O(log n) cache lines and the set costs 8 bytes per IPv4 range.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use ipnet::IpNet;

use crate::problem::{Problems, Span};

/// One network as an operator writes it: `10.0.0.0/8`, `2001:db8::/32`, or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

/// Text that is neither a network nor an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or CIDR network")]
pub struct BadCidr(pub String);

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        match s.parse::<IpAddr>() {
            Ok(ip) => Ok(Cidr(IpNet::from(ip))),
            Err(_) => Err(BadCidr(s.to_string())),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An immutable set of networks with inclusive `[start, end]` ranges per family.
#[derive(Debug, Clone, Default)]
pub struct CidrSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    /// Networks as written, before merging (what `flowgate_intel_entries` reports).
    entries: usize,
}

impl CidrSet {
    pub fn new(nets: impl IntoIterator<Item = Cidr>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut entries = 0;
        for Cidr(net) in nets {
            entries += 1;
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        CidrSet {
            v4: merge(v4),
            v6: merge(v6),
            entries,
        }
    }

    /// Every network of `sets`, as one set (trusted proxies written inline and from lists).
    pub fn union<'a>(sets: impl IntoIterator<Item = &'a CidrSet>) -> CidrSet {
        let mut out = CidrSet::default();
        for s in sets {
            out.v4.extend_from_slice(&s.v4);
            out.v6.extend_from_slice(&s.v6);
            out.entries += s.entries;
        }
        CidrSet {
            v4: merge(out.v4),
            v6: merge(out.v6),
            entries: out.entries,
        }
    }

    /// Reads a list file: one address or network per line, `#` starts a comment.
    /// Every bad line is reported with its line number.
    pub fn load(path: &Path, problems: &mut Problems) -> Option<CidrSet> {
        Self::load_with(path, false, problems).map(|(set, _)| set)
    }

    /// As `load`; with `skip_bad`, bad lines are skipped and counted instead of reported.
    pub fn load_with(
        path: &Path,
        skip_bad: bool,
        problems: &mut Problems,
    ) -> Option<(CidrSet, usize)> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(
                    path,
                    Span::default(),
                    "",
                    format!("cannot read: {}", crate::problem::io_reason(&e)),
                );
                return None;
            }
        };
        let before = problems.len();
        let mut nets = Vec::new();
        let mut skipped = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            match line.parse::<Cidr>() {
                Ok(c) => nets.push(c),
                Err(_) if skip_bad => skipped += 1,
                Err(e) => {
                    let span = Span {
                        line: i + 1,
                        column: 1,
                    };
                    problems.push(path, span, "", e.to_string());
                }
            }
        }
        (problems.len() == before).then(|| (CidrSet::new(nets), skipped))
    }

    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => find(&self.v4, u32::from(v4)),
                None => find(&self.v6, u128::from(a)),
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Networks as written in the source.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Heap bytes held by the compiled ranges.
    pub fn heap_bytes(&self) -> usize {
        self.v4.capacity() * std::mem::size_of::<(u32, u32)>()
            + self.v6.capacity() * std::mem::size_of::<(u128, u128)>()
    }
}

fn merge<T: Ord + Copy + One>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        if let Some(last) = out.last_mut() {
            // Overlapping or adjacent ranges fold into one.
            if start <= last.1 || start == last.1.succ() {
                if end > last.1 {
                    last.1 = end;
                }
                continue;
            }
        }
        out.push((start, end));
    }
    out.shrink_to_fit();
    out
}

#[inline]
fn find<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    // Index of the first range starting after x; the candidate is the one before it.
    let i = ranges.partition_point(|&(start, _)| start <= x);
    i > 0 && x <= ranges[i - 1].1
}

trait One {
    fn succ(self) -> Self;
}

impl One for u32 {
    fn succ(self) -> Self {
        self.saturating_add(1)
    }
}

impl One for u128 {
    fn succ(self) -> Self {
        self.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> CidrSet {
        CidrSet::new(items.iter().map(|s| s.parse().unwrap()))
    }

    #[test]
    fn a_union_holds_every_network_of_its_sets() {
        let (a, b) = (set(&["10.0.0.0/8", "2001:db8::/32"]), set(&["11.0.0.0/8"]));
        let u = CidrSet::union([&a, &b]);
        for ip in ["10.1.2.3", "11.255.0.1", "2001:db8::9"] {
            assert!(u.contains(ip.parse().unwrap()), "{ip}");
        }
        assert!(!u.contains("12.0.0.1".parse().unwrap()));
        assert_eq!(u.entries(), 3);
    }

    #[test]
    fn membership_across_families() {
        let s = set(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]);
        assert!(s.contains("10.255.255.255".parse().unwrap()));
        assert!(s.contains("192.168.1.7".parse().unwrap()));
        assert!(!s.contains("192.168.1.8".parse().unwrap()));
        assert!(s.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!s.contains("2001:db9::1".parse().unwrap()));
        assert!(!s.contains("11.0.0.0".parse().unwrap()));
        // IPv4-mapped IPv6 is the IPv4 address it carries.
        assert!(s.contains("::ffff:10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn adjacent_and_nested_ranges_merge() {
        let s = set(&["10.0.0.0/25", "10.0.0.128/25", "10.0.0.5", "0.0.0.0/0"]);
        assert_eq!(s.v4, vec![(0, u32::MAX)]);
        assert_eq!(s.entries(), 4);
        let s = set(&["10.0.0.0/25", "10.0.0.128/25"]);
        assert_eq!(s.v4.len(), 1);
    }

    #[test]
    fn bad_lines_are_reported_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.txt");
        std::fs::write(
            &path,
            "# header\n1.2.3.0/24\nnot-an-ip\n\n10.0.0.0/33 # bad\n",
        )
        .unwrap();
        let mut problems = Problems::new();
        assert!(CidrSet::load(&path, &mut problems).is_none());
        let lines: Vec<usize> = problems.iter().map(|p| p.span.line).collect();
        assert_eq!(lines, vec![3, 5]);
    }
}
