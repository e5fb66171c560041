//! TLS listeners as operators run them: several certificates chosen by SNI, HTTP/2 and
//! HTTP/1.1, TLS 1.2 at least, and certificates swapped while visitors keep coming. The
//! clients are real: curl, openssl s_client, and Python's ssl module (which shows the
//! certificate each handshake got).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use sha2::Digest;

/// A self-signed certificate for some names, its key, and the hash a client reports.
struct TestCert {
    pem: String,
    key: String,
    sha: String,
}

fn make_cert(names: &[&str]) -> TestCert {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "flowgate test");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    TestCert {
        pem: cert.pem(),
        key: key.serialize_pem(),
        sha: hex(&sha2::Sha256::digest(cert.der())),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `<stem>.pem` and `<stem>.key` each by rename, as a certificate manager does.
fn install(dir: &Path, stem: &str, c: &TestCert) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    for (path, text) in [(&cert, &c.pem), (&key, &c.key)] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
    (cert, key)
}

/// flowgate with one TLS listener serving `pairs` (stems in `dir`) and `rules`.
fn serve(dir: &Path, pairs: &[&str], extra: &str, rules: &str) -> (Flowgate, u16) {
    let certs: Vec<String> = (pairs.iter())
        .map(|s| {
            let d = dir.display();
            format!("{{ cert: {d}/{s}.pem, key: {d}/{s}.key }}")
        })
        .collect();
    let config = format!(
        "tls: [ {{ listen: \"127.0.0.1:0\", certs: [ {} ] }} ]\n{extra}",
        certs.join(", ")
    );
    let fg = Flowgate::start(&config, rules);
    let port = fg.process.addr_of("tls[0]").port();
    (fg, port)
}

/// A Python visitor: `sni PORT NAME...` prints, per name (`-`: no SNI), the hash of the
/// certificate it got and the status of a GET; `loop PORT NAME STOP` does that over and over,
/// a fresh connection each time, until the file STOP exists.
const VISITOR: &str = r#"
import hashlib, os, socket, ssl, sys
def visit(port, name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=None if name == "-" else name) as s:
            der = s.getpeercert(binary_form=True)
            host = "none.test" if name == "-" else name
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    return hashlib.sha256(der).hexdigest(), data.split(b" ")[1].decode()
mode, port = sys.argv[1], int(sys.argv[2])
if mode == "sni":
    for name in sys.argv[3:]:
        print(*visit(port, name), flush=True)
else:
    while not os.path.exists(sys.argv[4]):
        try:
            print(*visit(port, sys.argv[3]), flush=True)
        except Exception as e:
            print("error", repr(e).replace(" ", "_"), flush=True)
"#;

fn python(args: &[&str]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(VISITOR).args(args);
    cmd
}

/// `(certificate hash, status)` for each SNI name (`-` for none).
fn certs_for(port: u16, names: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["sni".to_string(), port.to_string()];
    args.extend(names.iter().map(|n| n.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = python(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).lines())
        .filter_map(|l| l.split_once(' '))
        .map(|(sha, status)| (sha.to_string(), status.to_string()))
        .collect()
}

/// curl against `https://NAME:PORT/PATH`, trusting only `ca`; its output then the HTTP
/// version it used and the number of connections it opened.
fn curl(version: &str, ca: &Path, name: &str, port: u16, paths: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", version, "--cacert"]).arg(ca);
    cmd.args(["--resolve", &format!("{name}:{port}:127.0.0.1")]);
    cmd.args(["-A", CHROME, "-w", "\n%{http_version} %{num_connects}\n"]);
    for p in paths {
        cmd.arg(format!("https://{name}:{port}{p}"));
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

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

#[test]
fn http2_and_http1_get_the_same_rules_events_and_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let shop = make_cert(&["shop.test"]);
    install(dir.path(), "shop", &shop);
    let up = Upstream::start("landing");
    let rules = format!(
        "upstreams: {{ landing: {{ peers: [\"{}\"] }} }}\n\
         routes: {{ offer: {{ proxy: {{ upstream: landing, path: /offer }} }}, \
         other: {{ respond: {{ body: other }} }} }}\n\
         campaigns: [ {{ id: c, match: {{ host: shop.test }}, flows: [ {{ name: f, to: offer }} ] }}, \
         {{ id: rest, flows: [ {{ name: g, to: other }} ] }} ]\n",
        up.addr
    );
    let (fg, port) = serve(dir.path(), &["shop"], "", &rules);
    let ca = dir.path().join("shop.pem");
    for (version, seen) in [("--http2", "2 1"), ("--http1.1", "1.1 1")] {
        let (ok, out) = curl(version, &ca, "shop.test", port, &["/lp?sub_id=v"]);
        assert!(ok, "{out}");
        assert!(out.ends_with(&format!("\n{seen}\n")), "{version}: {out}");
        let echoed = json(out.lines().next().unwrap());
        // The upstream leg is HTTP/1.1 with the visitor's host, whichever version came in.
        assert_eq!(echoed["target"], "/offer/lp?sub_id=v", "{version}");
        let host = format!("shop.test:{port}");
        assert_eq!(echoed["headers"]["host"], host.as_str(), "{version}");
    }
    let events = fg.events(2);
    for ev in &events {
        assert_eq!(ev["campaign"], "c");
        assert_eq!(ev["route"], "offer");
        assert_eq!(ev["host"], "shop.test");
        assert_eq!(ev["status"], 200);
        assert_eq!(ev["query"]["sub_id"], "v");
    }
}

#[test]
fn every_sni_name_gets_its_own_certificate_and_unknown_names_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(&["a.test", "www.a.test"]);
    let b = make_cert(&["*.b.test", "b.test"]);
    let c = make_cert(&["c.test"]);
    for (stem, cert) in [("a", &a), ("b", &b), ("c", &c)] {
        install(dir.path(), stem, cert);
    }
    let (_fg, port) = serve(dir.path(), &["a", "b", "c"], "", &page_rules("hello"));
    let names = [
        "a.test",
        "www.a.test",
        "b.test",
        "shop.b.test",
        "c.test",
        "unknown.test",
        "deep.shop.b.test",
        "-",
    ];
    let want = [&a, &a, &b, &b, &c, &a, &a, &a];
    let got = certs_for(port, &names);
    assert_eq!(got.len(), names.len());
    for ((name, cert), (sha, status)) in names.iter().zip(want).zip(&got) {
        assert_eq!(sha, &cert.sha, "{name} got the wrong certificate");
        assert_eq!(status, "200", "{name}");
    }
    // curl verifies each name against the one certificate it trusts, over both versions.
    for (name, stem) in [("www.a.test", "a"), ("shop.b.test", "b"), ("c.test", "c")] {
        for version in ["--http2", "--http1.1"] {
            let ca = dir.path().join(format!("{stem}.pem"));
            let (ok, out) = curl(version, &ca, name, port, &["/"]);
            assert!(ok && out.starts_with("hello\n"), "{name} {version}: {out}");
        }
    }
}

#[test]
fn tls_1_2_is_the_oldest_version_served() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "a", &make_cert(&["a.test"]));
    let (_fg, port) = serve(dir.path(), &["a"], "", &page_rules("hello"));
    // SECLEVEL=0 lets this client offer what the server must refuse by itself.
    let handshake = |version: &str| {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                version,
            ])
            .args(["-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "a.test"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.success(), text)
    };
    for old in ["-tls1", "-tls1_1"] {
        let (ok, text) = handshake(old);
        // The server's own refusal (an alert it sent), not this client's.
        assert!(!ok && text.contains("SSL alert number"), "{old}: {text}");
    }
    assert!(handshake("-tls1_2").0, "TLS 1.2 was refused");
    assert!(handshake("-tls1_3").0, "TLS 1.3 was refused");
}

#[test]
fn http2_keeps_the_connection_limits() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "a", &make_cert(&["a.test"]));
    let limits = "limits: { requests_per_connection: 2, max_header_bytes: 8KiB }\n";
    let (_fg, port) = serve(dir.path(), &["a"], limits, &page_rules("hello"));
    let ca = dir.path().join("a.pem");
    // Four requests on what curl would keep as one connection: GOAWAY after each second.
    let (ok, out) = curl("--http2", &ca, "a.test", port, &["/1", "/2", "/3", "/4"]);
    assert!(ok, "{out}");
    let answers: Vec<&str> = out.lines().filter(|l| l.starts_with("2 ")).collect();
    assert_eq!(answers.len(), 4, "all four over HTTP/2: {out}");
    // The second request of a connection sends GOAWAY, and the client moves to a new one. A
    // request the client sent before that GOAWAY reached it is still answered, as HTTP/2's
    // graceful shutdown promises (RFC 9113 §6.8): on a loaded machine one may slip in.
    let mut on_this_connection = 0;
    for a in &answers {
        on_this_connection = if *a == "2 1" {
            1
        } else {
            on_this_connection + 1
        };
        assert!(
            on_this_connection <= 3,
            "more than one request past the GOAWAY on a connection: {out}"
        );
    }
    let connections = answers.iter().filter(|a| **a == "2 1").count();
    assert!(connections >= 2, "four requests on one connection: {out}");
    assert_eq!(answers[0], "2 1", "{out}");
    // A header block over max_header_bytes gets 431, as over HTTP/1.1.
    let big = format!("X-Big: {}", "x".repeat(16 << 10));
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
        ])
        .arg(&ca)
        .args(["--resolve", &format!("a.test:{port}:127.0.0.1"), "-H", &big])
        .arg(format!("https://a.test:{port}/"))
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(code, "431", "{}", String::from_utf8_lossy(&out.stderr));
    let (ok, out) = curl("--http2", &ca, "a.test", port, &["/"]);
    assert!(ok && out.starts_with("hello\n"), "{out}");
}

#[test]
fn a_certificate_swapped_under_load_is_served_without_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let old = make_cert(&["swap.test"]);
    install(dir.path(), "swap", &old);
    let (_fg, port) = serve(dir.path(), &["swap"], "", &page_rules("hello"));
    let stop = dir.path().join("stop");
    let mut visitor = python(&["loop", &port.to_string(), "swap.test"])
        .arg(&stop)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let (seen, out) = (seen.clone(), visitor.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                seen.lock().unwrap().push(line);
            }
        })
    };
    let count = |sha: &str| {
        let seen = seen.lock().unwrap();
        seen.iter().filter(|l| l.starts_with(sha)).count()
    };
    wait_for("requests before the swap", START, || count(&old.sha) >= 20);
    let new = make_cert(&["swap.test"]);
    install(dir.path(), "swap", &new);
    wait_for("the new certificate", START, || count(&new.sha) >= 20);
    std::fs::write(&stop, "").unwrap();
    visitor.wait().unwrap();
    reader.join().unwrap();

    let seen = seen.lock().unwrap();
    let failed: Vec<&String> = (seen.iter())
        .filter(|l| !(l.ends_with(" 200") && (l.starts_with(&old.sha) || l.starts_with(&new.sha))))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {}: {failed:?}",
        failed.len(),
        seen.len()
    );
    // One swap: every handshake after the first with the new certificate has it too.
    let first_new = seen.iter().position(|l| l.starts_with(&new.sha)).unwrap();
    assert!(seen[first_new..].iter().all(|l| l.starts_with(&new.sha)));
}

#[test]
fn a_bad_pair_is_refused_and_the_old_one_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (make_cert(&["a.test"]), make_cert(&["b.test"]));
    install(dir.path(), "a", &a);
    install(dir.path(), "b", &b);
    let (fg, port) = serve(dir.path(), &["a", "b"], "", &page_rules("hello"));

    // b's key replaced by one of another certificate.
    let stranger = make_cert(&["b.test"]);
    let tmp = dir.path().join("b.tmp");
    std::fs::write(&tmp, &stranger.key).unwrap();
    std::fs::rename(&tmp, dir.path().join("b.key")).unwrap();
    let (line, _) = fg
        .process
        .wait_log(0, &["tls reload refused", "tls[0].certs[1].key"]);
    assert!(line.contains("does not match the certificate"), "{line}");
    let got = certs_for(port, &["b.test", "a.test"]);
    assert_eq!(got[0], (b.sha.clone(), "200".to_string()));
    assert_eq!(got[1], (a.sha.clone(), "200".to_string()));

    // A certificate without names is refused too.
    let (line, _) = {
        let unnamed = make_cert(&[]);
        install(dir.path(), "a", &unnamed);
        fg.process
            .wait_log(0, &["tls reload refused", "tls[0].certs[0].cert"])
    };
    assert!(line.contains("no DNS name"), "{line}");
    assert_eq!(certs_for(port, &["a.test"])[0].0, a.sha);
}

#[test]
fn sighup_reloads_the_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let old = make_cert(&["a.test"]);
    let (cert, key) = install(dir.path(), "a", &old);
    let (fg, port) = serve(dir.path(), &["a"], "", &page_rules("hello"));
    // Rewritten in place with the same sizes and times, so only SIGHUP can notice.
    let new = loop {
        let c = make_cert(&["a.test"]);
        if c.pem.len() == old.pem.len() && c.key.len() == old.key.len() {
            break c;
        }
    };
    for (path, text) in [(&cert, &new.pem), (&key, &new.key)] {
        let modified = std::fs::metadata(path).unwrap().modified().unwrap();
        std::fs::write(path, text).unwrap();
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(modified).unwrap();
    }
    assert_eq!(certs_for(port, &["a.test"])[0].0, old.sha);
    fg.signal("HUP");
    wait_for("the certificate SIGHUP loaded", START, || {
        certs_for(port, &["a.test"])[0].0 == new.sha
    });
}

#[test]
fn check_names_the_file_line_and_field_of_a_bad_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (make_cert(&["a.test"]), make_cert(&["b.test"]));
    install(dir.path(), "a", &a);
    install(dir.path(), "b", &b);
    install(dir.path(), "unnamed", &make_cert(&[]));
    let d = dir.path().display();
    let extra = format!(
        "tls:\n  - listen: \"127.0.0.1:0\"\n    certs:\n      - {{ cert: {d}/a.pem, key: {d}/b.key }}\n      \
         - {{ cert: {d}/missing.pem, key: {d}/b.key }}\n      - {{ cert: {d}/unnamed.pem, key: {d}/unnamed.key }}\n"
    );
    let config = write_setup(dir.path(), &extra, &page_rules("hello"));
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let file = config.display();
    let lines = text.lines().collect::<Vec<_>>();
    let find = |needle: &str| lines.iter().find(|l| l.contains(needle)).copied();
    let mismatch = find("tls[0].certs[0].key").unwrap_or_else(|| panic!("{text}"));
    assert!(mismatch.starts_with(&format!("{file}:10:")), "{mismatch}");
    assert!(
        mismatch.contains("does not match the certificate"),
        "{mismatch}"
    );
    let missing = find("tls[0].certs[1].cert").unwrap_or_else(|| panic!("{text}"));
    assert!(missing.starts_with(&format!("{file}:11:")), "{missing}");
    assert!(missing.contains("cannot read"), "{missing}");
    let unnamed = find("tls[0].certs[2].cert").unwrap_or_else(|| panic!("{text}"));
    assert!(unnamed.contains("no DNS name"), "{unnamed}");
}

#[test]
fn a_handshake_that_never_comes_is_closed_by_the_header_deadline() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "a", &make_cert(&["a.test"]));
    let limits = "limits: { header_timeout: 1s }\n";
    let (_fg, port) = serve(dir.path(), &["a"], limits, &page_rules("hello"));
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent.set_read_timeout(Some(START)).unwrap();
    let start = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = std::io::Read::read(&mut silent, &mut buf);
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // The listener still serves everyone else.
    let ca = dir.path().join("a.pem");
    let (ok, out) = curl("--http2", &ca, "a.test", port, &["/"]);
    assert!(ok && out.starts_with("hello\n"), "{out}");
}
