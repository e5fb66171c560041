use std::path::Path;

use super::*;

/// Writes a self-signed certificate for `names` and its key as `<stem>.pem`, `<stem>.key`.
fn write_pair(dir: &Path, stem: &str, names: &[&str]) -> Pair {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "flowgate test");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    pair(&c, &k)
}

fn pair(cert: &Path, key: &Path) -> Pair {
    Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        config: PathBuf::from("flowgate.yaml"),
        field: "tls[0].certs[0]".into(),
        cert_span: Span { line: 3, column: 7 },
        key_span: Span { line: 4, column: 7 },
    }
}

/// Which pair (by its first name) answers `sni`.
fn answers(certs: &Certs, sni: Option<&str>) -> String {
    let table = certs.table.load();
    let key = table.pick(sni);
    let loaded = certs.loaded.lock().unwrap();
    let l = loaded.iter().find(|l| Arc::ptr_eq(&l.key, key)).unwrap();
    l.names[0].clone()
}

#[test]
fn each_name_gets_its_own_certificate_and_the_first_answers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_pair(dir.path(), "a", &["a.example", "www.a.example"]);
    let b = write_pair(dir.path(), "b", &["*.b.example", "b.example"]);
    let c = write_pair(dir.path(), "c", &["x.b.example"]);
    let certs = Certs::load("tls[0]", vec![a, b, c]).unwrap();
    assert_eq!(answers(&certs, Some("a.example")), "a.example");
    assert_eq!(answers(&certs, Some("www.a.example")), "a.example");
    assert_eq!(answers(&certs, Some("b.example")), "*.b.example");
    assert_eq!(answers(&certs, Some("shop.b.example")), "*.b.example");
    // An exact name wins over a wildcard listed before it.
    assert_eq!(answers(&certs, Some("x.b.example")), "x.b.example");
    // A wildcard covers one label only.
    assert_eq!(answers(&certs, Some("a.shop.b.example")), "a.example");
    assert_eq!(answers(&certs, Some("unknown.example")), "a.example");
    assert_eq!(answers(&certs, None), "a.example");
}

#[test]
fn a_name_two_pairs_claim_is_answered_by_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_pair(dir.path(), "a", &["default.example"]);
    let b = write_pair(dir.path(), "b", &["both.example", "b.example"]);
    let c = write_pair(dir.path(), "c", &["c.example", "both.example"]);
    let certs = Certs::load("tls[0]", vec![a, b, c]).unwrap();
    assert_eq!(answers(&certs, Some("both.example")), "both.example");
    assert_eq!(answers(&certs, Some("c.example")), "c.example");
}

#[test]
fn problems_name_the_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_pair(dir.path(), "good", &["good.example"]);
    let other = write_pair(dir.path(), "other", &["other.example"]);
    let unnamed = write_pair(dir.path(), "unnamed", &[]);
    let missing = dir.path().join("missing.pem");

    let mismatched = pair(&good.cert, &other.key).load().unwrap_err();
    assert_eq!(mismatched.field, "tls[0].certs[0].key");
    assert!(mismatched.to_string().starts_with("flowgate.yaml:4:7: "));
    assert!(mismatched
        .message
        .contains("does not match the certificate"));

    let unreadable = pair(&missing, &good.key).load().unwrap_err();
    assert_eq!(unreadable.field, "tls[0].certs[0].cert");
    assert!(
        unreadable.message.starts_with("cannot read "),
        "{unreadable}"
    );

    let no_names = unnamed.load().unwrap_err();
    assert!(no_names.message.contains("no DNS name"), "{no_names}");

    let key_as_cert = pair(&good.key, &good.key).load().unwrap_err();
    assert!(
        key_as_cert.message.contains("no PEM certificate"),
        "{key_as_cert}"
    );
    let cert_as_key = pair(&good.cert, &good.cert).load().unwrap_err();
    assert_eq!(cert_as_key.field, "tls[0].certs[0].key");
    assert!(
        cert_as_key.message.contains("no PEM private key"),
        "{cert_as_key}"
    );
}

#[test]
fn a_reload_takes_a_good_pair_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_pair(dir.path(), "a", &["a.example"]);
    let certs = Certs::load("tls[0]", vec![a.clone()]).unwrap();
    let before = certs.table.load().default.clone();

    std::fs::write(&a.key, "not a key").unwrap();
    assert_eq!(certs.reload("").len(), 1);
    assert!(Arc::ptr_eq(&certs.table.load().default, &before));

    write_pair(dir.path(), "a", &["renewed.example"]);
    assert!(certs.reload("").is_empty());
    assert_eq!(answers(&certs, None), "renewed.example");
}

#[test]
fn h2_is_offered_before_http_1_1() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_pair(dir.path(), "a", &["a.example"]);
    let config = server_config(Certs::load("tls[0]", vec![a]).unwrap()).unwrap();
    assert_eq!(
        config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}
