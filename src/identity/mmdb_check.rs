//! Full verification of a `.mmdb` file before it serves, as maxminddb's `verify()` does, except
//! that an empty `description` map is accepted: ip-location-db's databases have one, and
//! description is informational. Damage anywhere else is still refused.
//!
//! `verify()` checks the metadata's description before it walks the search tree and the data
//! section, and stops there. So when that is its only complaint, the same bytes are verified
//! again with the metadata re-encoded carrying a description: the search tree, the separator
//! and every data record are then checked exactly as for any other database.
//!
//! Two checks are flowgate's own, for every database. The whole search tree: every node is
//! reached from the root, none points back at the root or round a loop, every record is a
//! node, "empty" or a pointer into the data section (`verify()` walks only the networks it
//! reaches, so a tree padded with garbage nodes passes it). And the metadata must not end in an
//! empty map or list: the trigger of a known libmaxminddb over-read (the bad-data corpus's
//! `*-last-in-metadata` files), and other tools on the machine read the same files.

use maxminddb::{MaxMindDbError, Metadata, Reader};

const METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";

pub fn verify(bytes: &[u8]) -> Result<(), MaxMindDbError> {
    let reader = Reader::from_source(bytes)?;
    match reader.verify() {
        Err(e) if is_empty_description(&e) && reader.metadata().description.is_empty() => {
            let patched = with_description(bytes, reader.metadata())?;
            Reader::from_source(&patched[..])?.verify()?;
        }
        other => other?,
    }
    if ends_in_empty_container(&bytes[metadata_start(bytes)?..]) {
        return Err(MaxMindDbError::invalid_database(
            "the metadata ends in an empty map or list",
        ));
    }
    search_tree(bytes, reader.metadata())
}

fn metadata_start(bytes: &[u8]) -> Result<usize, MaxMindDbError> {
    bytes
        .windows(METADATA_MARKER.len())
        .rposition(|w| w == METADATA_MARKER)
        .map(|i| i + METADATA_MARKER.len())
        .ok_or_else(|| MaxMindDbError::invalid_database("no metadata marker"))
}

/// Every node, not only those on the way to a network: records in range, none pointing at the
/// root, each node reached from the root once its subtree is entered, and no loop.
fn search_tree(bytes: &[u8], m: &Metadata) -> Result<(), MaxMindDbError> {
    let bad = |what: String| {
        Err(MaxMindDbError::invalid_database(format!(
            "search tree: {what}"
        )))
    };
    let nodes = m.node_count as usize;
    let node_bytes = usize::from(m.record_size) / 4;
    let tree_end = nodes * node_bytes;
    let data_len = metadata_start(bytes)? - METADATA_MARKER.len() - tree_end - 16;
    let record = |node: usize, right: bool| -> usize {
        let b = &bytes[node * node_bytes..(node + 1) * node_bytes];
        let be = |s: &[u8]| s.iter().fold(0usize, |a, x| (a << 8) | usize::from(*x));
        match (m.record_size, right) {
            (24, false) => be(&b[0..3]),
            (24, true) => be(&b[3..6]),
            (28, false) => (usize::from(b[3] >> 4) << 24) | be(&b[0..3]),
            (28, true) => (usize::from(b[3] & 0x0f) << 24) | be(&b[4..7]),
            (_, false) => be(&b[0..4]),
            (_, true) => be(&b[4..8]),
        }
    };
    for node in 0..nodes {
        for right in [false, true] {
            let r = record(node, right);
            if r == 0 {
                return bad(format!("node {node} points back at the root"));
            }
            if r > nodes && !(r >= nodes + 16 && r - nodes - 16 < data_len) {
                return bad(format!("node {node} points outside the file ({r})"));
            }
        }
    }
    // 0: not seen, 1: on the path being walked, 2: done.
    let mut state = vec![0u8; nodes];
    let mut stack = vec![(0usize, 0u8)];
    state[0] = 1;
    while let Some((node, next)) = stack.pop() {
        if next == 2 {
            state[node] = 2;
            continue;
        }
        stack.push((node, next + 1));
        let child = record(node, next == 1);
        if child >= nodes {
            continue;
        }
        match state[child] {
            0 => {
                state[child] = 1;
                stack.push((child, 0));
            }
            1 => return bad(format!("node {node} loops back to node {child}")),
            _ => {}
        }
    }
    match state.iter().filter(|s| **s == 0).count() {
        0 => Ok(()),
        n => bad(format!(
            "{n} of {nodes} nodes are not reached from the root"
        )),
    }
}

/// Whether the metadata map's last value is an empty map or list.
fn ends_in_empty_container(meta: &[u8]) -> bool {
    let mut at = 0;
    let Some((7, entries)) = control(meta, &mut at) else {
        return false;
    };
    let mut last = None;
    for _ in 0..entries {
        if skip(meta, &mut at, 0).is_none() {
            return false;
        }
        last = Some(at);
        if skip(meta, &mut at, 0).is_none() {
            return false;
        }
    }
    let Some(mut at) = last else { return false };
    matches!(control(meta, &mut at), Some((7 | 11, 0)))
}

/// `(type, size)` of the value at `at`, moving past its control bytes.
fn control(b: &[u8], at: &mut usize) -> Option<(u8, usize)> {
    let c = *b.get(*at)?;
    *at += 1;
    let mut kind = c >> 5;
    if kind == 0 {
        kind = 7 + *b.get(*at)?;
        *at += 1;
    }
    let size = usize::from(c & 0x1f);
    if kind == 1 {
        return Some((1, size));
    }
    let more = |n: usize, at: &mut usize| -> Option<usize> {
        let s = b.get(*at..*at + n)?;
        *at += n;
        Some(s.iter().fold(0usize, |a, x| (a << 8) | usize::from(*x)))
    };
    let size = match size {
        29 => 29 + more(1, at)?,
        30 => 285 + more(2, at)?,
        31 => 65_821 + more(3, at)?,
        s => s,
    };
    Some((kind, size))
}

/// Moves past one value (metadata was already verified, so this only has to find ends).
fn skip(b: &[u8], at: &mut usize, depth: usize) -> Option<()> {
    if depth > 32 {
        return None;
    }
    match control(b, at)? {
        (1, size) => *at += 1 + ((size >> 3) & 3),
        (7, n) => (0..2 * n).try_for_each(|_| skip(b, at, depth + 1))?,
        (11, n) => (0..n).try_for_each(|_| skip(b, at, depth + 1))?,
        (3, _) => *at += 8,
        (15, _) => *at += 4,
        (14, _) => {}
        (_, size) => *at += size,
    }
    (*at <= b.len()).then_some(())
}

fn is_empty_description(e: &MaxMindDbError) -> bool {
    matches!(e, MaxMindDbError::InvalidDatabase { message, .. }
        if message.starts_with("description - Expected: non-empty map"))
}

/// The file up to its metadata, then the metadata with `description: { en: "" }`.
fn with_description(bytes: &[u8], m: &Metadata) -> Result<Vec<u8>, MaxMindDbError> {
    let start = metadata_start(bytes)?;
    let mut out = bytes[..start].to_vec();
    let mut e = Encoder(&mut out);
    e.control(7, 9);
    e.entry_u(
        "binary_format_major_version",
        5,
        u64::from(m.binary_format_major_version),
    );
    e.entry_u(
        "binary_format_minor_version",
        5,
        u64::from(m.binary_format_minor_version),
    );
    e.entry_u("build_epoch", 9, m.build_epoch);
    e.string("database_type");
    e.string(&m.database_type);
    e.string("description");
    e.control(7, 1);
    e.string("en");
    e.string("");
    e.entry_u("ip_version", 5, u64::from(m.ip_version));
    e.string("languages");
    e.control(11, m.languages.len());
    m.languages.iter().for_each(|l| e.string(l));
    e.entry_u("node_count", 6, u64::from(m.node_count));
    e.entry_u("record_size", 5, u64::from(m.record_size));
    Ok(out)
}

/// The MaxMind DB data format, as much of it as metadata uses.
struct Encoder<'a>(&'a mut Vec<u8>);

impl Encoder<'_> {
    /// A control byte for `kind` (extended kinds past 7 take a second byte) and `size`.
    fn control(&mut self, kind: u8, size: usize) {
        let (first, extended) = if kind > 7 {
            (0, Some(kind - 7))
        } else {
            (kind << 5, None)
        };
        let tail: Vec<u8> = match size {
            0..29 => {
                self.0.push(first | size as u8);
                Vec::new()
            }
            29..285 => {
                self.0.push(first | 29);
                vec![(size - 29) as u8]
            }
            285..65_821 => {
                self.0.push(first | 30);
                ((size - 285) as u16).to_be_bytes().to_vec()
            }
            _ => {
                self.0.push(first | 31);
                ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()
            }
        };
        self.0.extend(extended);
        self.0.extend(tail);
    }

    fn string(&mut self, s: &str) {
        self.control(2, s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    /// An unsigned integer of `kind` (5: uint16, 6: uint32, 9: uint64) in as few bytes as it
    /// needs.
    fn uint(&mut self, kind: u8, v: u64) {
        let bytes = v.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        self.control(kind, 8 - skip);
        self.0.extend_from_slice(&bytes[skip..]);
    }

    fn entry_u(&mut self, key: &str, kind: u8, v: u64) {
        self.string(key);
        self.uint(kind, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re_encoded_metadata_reads_back_as_the_original_plus_a_description() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/maxmind/GeoIP2-Country-Test.mmdb"
        ))
        .expect("test database");
        let original = Reader::from_source(&bytes[..])
            .expect("reads")
            .metadata()
            .clone();
        let patched = with_description(&bytes, &original).expect("patches");
        let reader = Reader::from_source(&patched[..]).expect("reads");
        let mut want = original.clone();
        want.description = [("en".to_string(), String::new())].into();
        assert_eq!(reader.metadata(), &want);
        reader.verify().expect("verifies");
    }

    #[test]
    fn every_bundled_and_real_layout_database_passes_the_tree_walk() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/maxmind");
        for f in std::fs::read_dir(dir).expect("test data").flatten() {
            let p = f.path();
            if p.extension().is_some_and(|e| e == "mmdb") {
                let bytes = std::fs::read(&p).expect("reads");
                verify(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            }
        }
    }
}
