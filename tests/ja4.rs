//! The JA4 fingerprint of real TLS clients (curl over HTTP/2 and HTTP/1.1, Python's ssl
//! module, openssl s_client) as flowgate computes it from their ClientHello, checked against an independent
//! implementation (tests/data/ja4/ja4_reference.py, its own byte parser) run on the very
//! bytes each client sent, captured by a relay on the way to flowgate. A rule that lists a
//! fingerprint sends that client to the safe page; `explain` and rule tests take a `ja4`.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Rules whose `fingerprinted` flow lists `ja4` (YAML list items) and sends those to safe.
fn rules(ja4: &[String]) -> String {
    let list: Vec<String> = ja4.iter().map(|j| format!("\"{j}\"")).collect();
    format!(
        "routes:\n  offer: {{ respond: {{ body: offer }} }}\n  safe: {{ respond: {{ body: safe }} }}\n\
         campaigns:\n  - id: c\n    flows:\n      - name: fingerprinted\n        if: {{ ja4: [ {} ] }}\n        to: safe\n      - {{ name: rest, to: offer }}\n",
        list.join(", ")
    )
}

/// flowgate with one TLS listener (a self-signed certificate for `promo.test`).
fn serve_tls(rules: &str) -> (Flowgate, u16) {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["promo.test".to_string()]).unwrap();
    let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    let extra = format!(
        "tls: [ {{ listen: \"127.0.0.1:0\", cert: {}, key: {} }} ]\n",
        c.display(),
        k.display()
    );
    let fg = Flowgate::start(&extra, rules);
    let port = fg.process.addr_of("tls[0]").port();
    // The certificate files are read at start; the folder may go.
    drop(dir);
    (fg, port)
}

/// The page curl gets from `https://promo.test:PORT/` with its default ALPN (h2 first) or
/// `--http1.1`, and the user agent it sends.
fn curl(port: u16, extra: &[&str], ua: &str) -> String {
    let out = Command::new("curl")
        .args(["-sSk", "--max-time", "10", "-A", ua])
        .args(["--resolve", &format!("promo.test:{port}:127.0.0.1")])
        .args(extra)
        .arg(format!("https://promo.test:{port}/"))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page Python's ssl module gets (SNI promo.test, no ALPN), HTTP/1.1.
fn python(port: u16, ua: &str) -> String {
    let script = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="promo.test") as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: promo.test\r\nUser-Agent: {sys.argv[2]}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
print(data.split(b"\r\n\r\n", 1)[1].decode(), end="")
"#;
    let out = Command::new("python3")
        .args(["-c", script, &port.to_string(), ua])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page `openssl s_client` gets (SNI promo.test, no ALPN), HTTP/1.1.
fn s_client(port: u16, ua: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-servername", "promo.test"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: promo.test\r\nUser-Agent: {ua}\r\nConnection: close\r\n\r\n"
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    // `-quiet` waits for the server to close, which `Connection: close` asks for.
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_string(),
        None => panic!("s_client: {text} {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// The reference implementation's JA4 of what a client sent.
fn reference_ja4(sent: &[u8]) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), sent).unwrap();
    let out = Command::new("python3")
        .arg(data("ja4/ja4_reference.py"))
        .arg(file.path())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "no ClientHello in {} bytes",
        sent.len()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn event_for<'a>(events: &'a [serde_json::Value], ua: &str) -> &'a serde_json::Value {
    (events.iter().rev())
        .find(|e| e["ua"] == ua)
        .unwrap_or_else(|| panic!("no event with ua {ua}: {events:?}"))
}

#[test]
fn real_clients_get_the_fingerprint_an_independent_implementation_computes_and_a_listed_one_goes_to_safe(
) {
    let (fg, port) = serve_tls(&rules(&["q13*".to_string()]));
    let relay = Relay::start(([127, 0, 0, 1], port).into());
    let via = relay.addr.port();
    // (client, user agent, page): each its own connection, one after the other.
    let clients = ["curl-h2", "curl-http1.1", "python-ssl", "openssl-s_client"];
    assert_eq!(curl(via, &[], clients[0]), "offer");
    assert_eq!(curl(via, &["--http1.1"], clients[1]), "offer");
    assert_eq!(python(via, clients[2]), "offer");
    assert_eq!(s_client(via, clients[3]), "offer");
    assert_eq!(relay.connections(), 4);

    let events = fg.events(4);
    let mut seen = Vec::new();
    for (n, ua) in clients.iter().enumerate() {
        let expected = reference_ja4(&relay.sent(n).unwrap());
        let got = event_for(&events, ua)["ja4"]
            .as_str()
            .unwrap_or("")
            .to_string();
        println!("{ua}: flowgate {got}, reference {expected}");
        assert_eq!(got, expected, "{ua}");
        seen.push(got);
    }
    let [h2, h1, py, ossl] = [&seen[0], &seen[1], &seen[2], &seen[3]];
    // curl offers h2 first unless told HTTP/1.1; Python's ssl offers no ALPN at all. The
    // hashes leave ALPN out, so both curls share them.
    assert!(h2.starts_with("t13d") && &h2[8..10] == "h2", "{h2}");
    assert_eq!(&h1[8..10], "h1", "{h1}");
    assert_eq!(h2[10..], h1[10..]);
    assert_eq!(&py[8..10], "00", "{py}");
    assert_eq!(&ossl[8..10], "00", "{ossl}");

    // List curl's HTTP/2 fingerprint whole and Python's by its first part.
    let generation = fg.metric("flowgate_snapshot_generation");
    let listed = [h2.clone(), format!("{}*", &py[..11])];
    std::fs::write(fg.rules_dir().join("main.yaml"), rules(&listed)).unwrap();
    wait_for("the rules listing the fingerprints", START, || {
        fg.metric("flowgate_snapshot_generation") > generation
    });
    assert_eq!(curl(port, &[], "curl-h2-again"), "safe");
    assert_eq!(python(port, "python-ssl-again"), "safe");
    assert_eq!(curl(port, &["--http1.1"], "curl-http1.1-again"), "offer");
    let events = fg.events(7);
    let again = event_for(&events, "curl-h2-again");
    assert_eq!(
        (again["flow"].as_str(), again["ja4"].as_str()),
        (Some("fingerprinted"), Some(h2.as_str()))
    );
    assert_eq!(event_for(&events, "curl-http1.1-again")["flow"], "rest");
}

/// Plain HTTP, a record larger than any ClientHello, and a record that is no ClientHello, each
/// sent to the TLS port: no fingerprint, the handshake refuses them, and the listener serves on.
#[test]
fn what_is_not_a_client_hello_is_left_to_the_handshake() {
    use std::io::{Read, Write};
    let (fg, port) = serve_tls(&rules(&["t*".to_string()]));
    let firsts: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: promo.test\r\n\r\n",
        &[22, 3, 1, 0xff, 0xff, 1, 0, 0xff, 0xfb],
        &[22, 3, 1, 0, 4, 14, 0, 0, 0],
    ];
    for first in firsts {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(START)).unwrap();
        s.write_all(first).unwrap();
        // Whatever the handshake answers (an alert, or nothing), it closes the connection.
        let mut rest = Vec::new();
        let closed = s.read_to_end(&mut rest);
        assert!(
            closed.is_ok()
                || closed
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{closed:?}"
        );
        assert!(
            !String::from_utf8_lossy(&rest).contains("HTTP/1.1"),
            "{rest:?}"
        );
    }
    assert_eq!(curl(port, &[], "after"), "safe");
    // The refused connections made no request, so the one event is curl's.
    let events = fg.events(1);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0]["ja4"]
        .as_str()
        .is_some_and(|j| j.starts_with("t13d")));
}

#[test]
fn a_plain_listener_has_no_fingerprint_and_no_ja4_condition_holds() {
    let fg = Flowgate::start("", &rules(&["t*".to_string(), "q*".to_string()]));
    let r = fg.get("/", &[("Host", "promo.test"), ("User-Agent", "plain")]);
    assert_eq!(r.body, "offer");
    let ev = fg.events(1);
    assert!(ev[0].get("ja4").is_none(), "{}", ev[0]);
}

/// `flowgate explain --ja4` and a rule test's `request.ja4`.
#[test]
fn explain_and_rule_tests_take_a_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let listed = "t13d1516h2_8daaf6152771_b186095e22b6";
    let config = write_setup(dir.path(), "", &rules(&[listed.to_string()]));
    let explain = |ja4: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .args(["explain", "-c"])
            .arg(&config)
            .args(["--url", "https://promo.test/"])
            .args(ja4)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&String::from_utf8_lossy(&out.stdout))
    };
    let x = explain(&["--ja4", listed]);
    assert_eq!(x["decision"]["route"], "safe");
    assert_eq!(x["visitor"]["ja4"], listed);
    let step = (x["trace"].as_array().unwrap().iter())
        .find(|s| s["condition"] == "if.ja4")
        .expect("a ja4 step");
    assert_eq!(
        (step["value"].as_str(), step["result"].as_bool()),
        (Some(listed), Some(true))
    );
    let x = explain(&[]);
    assert_eq!(x["decision"]["route"], "offer");
    let step = (x["trace"].as_array().unwrap().iter())
        .find(|s| s["condition"] == "if.ja4")
        .expect("a ja4 step");
    assert_eq!(step["value"], "(none: not a TLS connection)");

    let tests = format!(
        "- {{ name: listed, request: {{ url: \"https://promo.test/\", ja4: {listed} }}, expect: {{ route: safe }} }}\n\
         - {{ name: other, request: {{ url: \"https://promo.test/\", ja4: t12d4605h2_85626a9a5f7f_aaf95bb78ec9 }}, expect: {{ route: offer }} }}\n"
    );
    write_rule_tests(&config, &tests);
    let (code, text) = flowgate_said(&config, &["check"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("2 rule tests passed"), "{text}");
}

fn write_rule_tests(config: &Path, tests: &str) {
    let dir = config.parent().unwrap().join("rules/tests");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ja4.yaml"), tests).unwrap();
}

#[test]
fn a_value_that_is_not_a_fingerprint_is_named_with_its_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), "", &rules(&["chrome".to_string()]));
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("rules/main.yaml:8:"), "{text}");
    assert!(
        text.contains("campaigns[c].flows[fingerprinted].if.ja4"),
        "{text}"
    );
    assert!(
        text.contains("\"chrome\" is not a JA4 fingerprint"),
        "{text}"
    );
}
