//! The visitor cookie is `Secure` whenever the visitor came over HTTPS — to flowgate's own
//! TLS listener, or to a trusted proxy that says so with `X-Forwarded-Proto` — and only then:
//! a browser then never sends it over plain HTTP, where the path could read or replay it.

mod common;

use std::process::Command;

use common::*;

fn set_cookie(r: &Reply) -> String {
    r.header("set-cookie")
        .expect("a visitor cookie")
        .to_string()
}

#[test]
fn over_plain_http_the_cookie_is_not_secure_unless_a_trusted_proxy_says_https() {
    let fg = Flowgate::start("trusted_proxies: [127.0.0.1/32]\n", UNIQUE_RULES);
    let plain = fg.get(
        "/",
        &[("User-Agent", CHROME), ("X-Forwarded-For", "203.0.113.7")],
    );
    let c = set_cookie(&plain);
    assert!(c.starts_with("fg_uv=") && !c.contains("Secure"), "{c}");
    let https = fg.get(
        "/",
        &[
            ("User-Agent", CHROME),
            ("X-Forwarded-For", "203.0.113.8"),
            ("X-Forwarded-Proto", "https"),
        ],
    );
    let c = set_cookie(&https);
    assert!(c.ends_with("; Secure") && c.contains("HttpOnly"), "{c}");
}

#[test]
fn an_untrusted_peer_cannot_claim_https_but_a_tls_visitor_gets_a_secure_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let names = vec!["shop.test".to_string()];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (pem, key_file) = (dir.path().join("shop.pem"), dir.path().join("shop.key"));
    std::fs::write(&pem, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let config = format!(
        "trusted_proxies: []\ntls: [ {{ listen: \"127.0.0.1:0\", certs: [ {{ cert: {}, key: {} }} ] }} ]\n",
        pem.display(),
        key_file.display()
    );
    let fg = Flowgate::start(&config, UNIQUE_RULES);

    // No trusted proxies: the header is the visitor's own claim.
    let claimed = fg.get(
        "/",
        &[("User-Agent", CHROME), ("X-Forwarded-Proto", "https")],
    );
    assert!(!set_cookie(&claimed).contains("Secure"));

    let port = fg.process.addr_of("tls[0]").port();
    for version in ["--http1.1", "--http2"] {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-D", "-", version, "--cacert"])
            .arg(&pem)
            .args(["--resolve", &format!("shop.test:{port}:127.0.0.1")])
            .args(["-A", CHROME, &format!("https://shop.test:{port}/")])
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{head}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cookie = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
            .unwrap_or_else(|| panic!("no cookie over {version}: {head}"));
        assert!(
            cookie.trim_end().ends_with("; Secure"),
            "{version}: {cookie}"
        );
    }
}
