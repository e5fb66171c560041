//! A TLS listener: flowgate terminates HTTPS with the operator's certificate.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_tls_listener_serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let extra = format!(
        "tls: [ {{ listen: \"127.0.0.1:0\", cert: {}, key: {} }} ]\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    );
    let fg = Flowgate::start(&extra, "routes: { page: { respond: { body: secure } } }\ncampaigns: [ { id: c, flows: [ { name: f, to: page } ] } ]\n");
    let tls_port = fg.process.addr_of("tls[0]").port();

    let root = ureq::tls::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[root]))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent
        .get(&format!("https://localhost:{tls_port}/?sub_id=tls"))
        .header("User-Agent", CHROME)
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.body_mut().read_to_string().unwrap(), "secure");
    let ev = fg.events(1);
    assert_eq!(ev[0]["query"]["sub_id"], "tls");
    assert_eq!(ev[0]["host"], "localhost");
}
