use super::*;

/// The ClientHello records of FoxIO's own test captures, each with the JA4 FoxIO's test
/// output gives it (tests/data/ja4/README.md says how they were taken out).
fn vectors() -> Vec<(String, Vec<u8>, String)> {
    static READ: std::sync::OnceLock<Vec<(String, Vec<u8>, String)>> = std::sync::OnceLock::new();
    READ.get_or_init(read_vectors).clone()
}

fn read_vectors() -> Vec<(String, Vec<u8>, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ja4");
    let list = std::fs::read_to_string(dir.join("expected.txt")).expect("expected.txt");
    (list.lines())
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (file, ja4) = l.split_once(' ').expect("`file ja4` lines");
            let bytes = std::fs::read(dir.join(file)).expect("a vector file");
            (file.to_string(), bytes, ja4.trim().to_string())
        })
        .collect()
}

#[test]
fn the_fingerprints_of_foxios_test_captures_are_the_ones_foxio_computed() {
    let vectors = vectors();
    assert!(vectors.len() >= 10, "{} vectors", vectors.len());
    for (file, record, expected) in vectors {
        let got = Ja4::of_client_hello(&record).map(|j| j.to_string());
        assert_eq!(got.as_deref(), Some(expected.as_str()), "{file}");
    }
}

#[test]
fn anything_but_one_whole_client_hello_has_no_fingerprint() {
    let (_, record, _) = vectors().swap_remove(0);
    for cut in [0, 1, 5, 6, 40, record.len() - 1] {
        assert_eq!(Ja4::of_client_hello(&record[..cut]), None, "cut at {cut}");
    }
    assert_eq!(
        Ja4::of_client_hello(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        None
    );
    // An alert record, and a handshake record holding a ServerHelloDone.
    assert_eq!(Ja4::of_client_hello(&[21, 3, 3, 0, 2, 2, 40]), None);
    assert_eq!(Ja4::of_client_hello(&[22, 3, 3, 0, 4, 14, 0, 0, 0]), None);
    // The extension block says more bytes follow than there are.
    let mut broken = record.clone();
    let last = broken.len() - 1;
    broken[last - 2] = 0xff;
    broken[last - 3] = 0xff;
    // Whatever it makes of it, it does not panic.
    let _ = Ja4::of_client_hello(&broken);
}

#[test]
fn grease_is_ignored_and_alpn_falls_back_to_hex() {
    assert!(grease(0x0a0a) && grease(0xfafa) && !grease(0x0a1a) && !grease(0x1301));
    assert_eq!(&alpn_code(Some(b"h2")), b"h2");
    assert_eq!(&alpn_code(Some(b"http/1.1")), b"h1");
    assert_eq!(&alpn_code(Some(b"x")), b"xx");
    assert_eq!(&alpn_code(Some(b"")), b"00");
    assert_eq!(&alpn_code(None), b"00");
    // The spec's own examples.
    assert_eq!(&alpn_code(Some(&[0xab])), b"ab");
    assert_eq!(&alpn_code(Some(&[0x20])), b"20");
    assert_eq!(&alpn_code(Some(&[0xab, 0xcd])), b"ad");
    assert_eq!(&alpn_code(Some(&[0x30, 0xab])), b"3b");
    assert_eq!(&alpn_code(Some(&[0x61, 0x20])), b"60");
    assert_eq!(&alpn_code(Some(&[0x30, 0xab, 0xcd, 0x31])), b"01");
}

#[test]
fn the_hashes_are_the_specs_worked_example() {
    let ciphers = [
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
        0x009c, 0x009d, 0x002f, 0x0035,
    ];
    let mut sorted = ciphers;
    sorted.sort_unstable();
    let mut h = Sha256::new();
    hex_list(&mut h, &sorted);
    let mut out = [0u8; 12];
    hash12(&mut out, h);
    assert_eq!(&out, b"8daaf6152771");
    let exts = [
        0x0005, 0x000a, 0x000b, 0x000d, 0x0012, 0x0015, 0x0017, 0x001b, 0x0023, 0x002b, 0x002d,
        0x0033, 0x4469, 0xff01,
    ];
    let sigs = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    let mut h = Sha256::new();
    hex_list(&mut h, &exts);
    h.update(b"_");
    hex_list(&mut h, &sigs);
    hash12(&mut out, h);
    assert_eq!(&out, b"e5627efa2ab1");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Whatever a client sends first, the fingerprint is 36 characters or none, never a panic:
    /// random bytes, and real ClientHellos with bytes changed or cut.
    #[test]
    fn any_first_record_gives_a_well_formed_fingerprint_or_none(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        pick in 0usize..10,
        at in proptest::prelude::any::<proptest::sample::Index>(),
        to in proptest::prelude::any::<u8>(),
        cut in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let check = |b: &[u8]| {
            if let Some(j) = Ja4::of_client_hello(b) {
                let s = j.as_str();
                assert!(s.len() == LEN && s.as_bytes()[10] == b'_' && s.as_bytes()[23] == b'_', "{s}");
            }
        };
        check(&bytes);
        let mut handshake = vec![22, 3, 1];
        handshake.extend((bytes.len() as u16).to_be_bytes());
        handshake.extend(&bytes);
        check(&handshake);
        let vectors = vectors();
        let (_, mut record, _) = vectors[pick % vectors.len()].clone();
        let i = at.index(record.len());
        record[i] = to;
        check(&record);
        check(&record[..cut.index(record.len())]);
    }
}
