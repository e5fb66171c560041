//! Consistency signals with real clients: curl, Python's urllib and requests, and a headless
//! Chromium (Debian's `chromium`), each as itself and dressed up in another client's user
//! agent. Every request goes through flowgate to an upstream that echoes what it received, so
//! the test shows what each client sent, which flow its signals picked, and what `explain`
//! says about it for the same headers.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

fn rules(up: std::net::SocketAddr) -> String {
    format!(
        r#"
upstreams: {{ echo: {{ peers: ["{up}"] }} }}
routes:
  hints: {{ proxy: {{ upstream: echo, path: /hints_mismatch }} }}
  headers: {{ proxy: {{ upstream: echo, path: /headers_missing }} }}
  clean: {{ proxy: {{ upstream: echo, path: /consistent }} }}
campaigns:
  - id: c
    flows:
      - {{ name: hints_mismatch, if: {{ signal: hints_mismatch }}, to: hints }}
      - {{ name: headers_missing, if: {{ signal: headers_missing }}, to: headers }}
      - {{ name: consistent, to: clean }}
"#
    )
}

/// What one client's request looked like on the far side of flowgate.
struct Seen {
    client: String,
    /// The flow the signals chose (the upstream path's first segment).
    flow: String,
    headers: BTreeMap<String, String>,
}

fn seen(client: &str, echo: &Value) -> Seen {
    let target = echo["target"].as_str().unwrap_or("");
    let flow = target
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    let headers = (echo["headers"].as_object().unwrap().iter())
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    Seen {
        client: client.to_string(),
        flow: flow.to_string(),
        headers,
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn curl(url: &str, args: &[&str]) -> Value {
    json(&run(Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .arg(url)))
}

fn python(url: &str, script: &str, ua: &str) -> Value {
    json(&run(Command::new("python3").args(["-c", script, url, ua])))
}

/// Chromium's rendering of the upstream's JSON, as the JSON again.
fn chromium(url: &str, ua: Option<&str>) -> Value {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(ua.map(|ua| format!("--user-agent={ua}")))
    .args(["--dump-dom", url])
    .stderr(Stdio::null());
    let dom = match cmd.output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => {
            panic!("chromium is installed (apt-get install chromium; .ci/setup test does): {e}")
        }
    };
    let (start, end) = (dom.find('{'), dom.rfind('}'));
    let (Some(start), Some(end)) = (start, end) else {
        panic!("no JSON in chromium's page: {dom}");
    };
    let text = dom[start..=end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    json(&text)
}

/// `flowgate explain --batch` for every request as it arrived: its decision and what the
/// `signal` condition found, per request.
fn explain(fg: &Flowgate, all: &[Seen]) -> Vec<(String, String)> {
    let own = [
        "host",
        "connection",
        "x-forwarded-for",
        "x-real-ip",
        "x-click-id",
        "x-forwarded-proto",
        "x-forwarded-host",
        "via",
        "content-length",
    ];
    let lines: String = (all.iter())
        .map(|s| {
            let headers: BTreeMap<&str, &str> = (s.headers.iter())
                .filter(|(k, _)| !own.contains(&k.as_str()) && *k != "user-agent")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let line = serde_json::json!({
                "url": "http://127.0.0.1/lp",
                "ua": s.headers.get("user-agent"),
                "headers": headers,
            });
            format!("{line}\n")
        })
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["explain", "--batch", "-c"])
        .arg(fg.dir.path().join("flowgate.yaml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (String::from_utf8_lossy(&out.stdout).lines())
        .map(|l| {
            let x = json(l);
            let flow = x["decision"]["flow"].as_str().unwrap_or("").to_string();
            let found = (x["trace"].as_array().unwrap().iter())
                .filter(|s| s["condition"] == "if.signal")
                .map(|s| s["value"].as_str().unwrap_or("").to_string())
                .find(|v| v != "none")
                .unwrap_or_else(|| "none".into());
            (flow, found)
        })
        .collect()
}

/// Prints what each client sent and what flowgate made of it, and checks each against the
/// flow and the finding expected.
fn check(fg: &Flowgate, cases: &[(Seen, &str, &str)]) {
    let all: Vec<Seen> = cases
        .iter()
        .map(|(s, _, _)| Seen {
            client: s.client.clone(),
            flow: s.flow.clone(),
            headers: s.headers.clone(),
        })
        .collect();
    let explained = explain(fg, &all);
    assert_eq!(explained.len(), cases.len());
    for ((s, flow, finding), (explained_flow, found)) in cases.iter().zip(&explained) {
        let sent: Vec<String> = (s.headers.iter())
            .filter(|(k, _)| {
                k.starts_with("sec-ch-ua")
                    || ["accept", "accept-language", "user-agent"].contains(&k.as_str())
            })
            .map(|(k, v)| format!("    {k}: {v}"))
            .collect();
        println!(
            "{}\n{}\n  -> {} ({found})",
            s.client,
            sent.join("\n"),
            s.flow
        );
        assert_eq!(s.flow, *flow, "{}: served", s.client);
        assert_eq!(
            explained_flow, flow,
            "{}: explain decides as serving did",
            s.client
        );
        assert!(
            found.starts_with(finding),
            "{}: explain says {found:?}, not {finding:?}",
            s.client
        );
    }
}

#[test]
fn curl_and_python_clients_dressed_as_chrome_miss_the_headers_chrome_sends() {
    let up = Upstream::start("echo");
    let fg = Flowgate::start("", &rules(up.addr));
    let url = format!("http://{}/lp", fg.addr);
    let lang = "Accept-Language: en-US,en;q=0.9";
    let urllib = "import sys, urllib.request\nr = urllib.request.Request(sys.argv[1], headers={'User-Agent': sys.argv[2]})\nprint(urllib.request.urlopen(r).read().decode())";
    let requests = "import sys, requests\nprint(requests.get(sys.argv[1], headers={'User-Agent': sys.argv[2]}).text)";
    let requests_lang = "import sys, requests\nprint(requests.get(sys.argv[1], headers={'User-Agent': sys.argv[2], 'Accept-Language': 'de-DE,de;q=0.9'}).text)";
    let cases = [
        (seen("curl as itself", &curl(&url, &[])), "consistent", "none"),
        (seen("curl with Chrome's user agent", &curl(&url, &["-A", CHROME])), "headers_missing", "headers_missing: no accept-language"),
        (seen("curl with Chrome's user agent and a language", &curl(&url, &["-A", CHROME, "-H", lang])), "consistent", "none"),
        (
            seen("curl with Chrome's user agent and Edge's client hints", &curl(&url, &["-A", CHROME, "-H", lang, "-H", "Sec-CH-UA: \"Chromium\";v=\"124\", \"Microsoft Edge\";v=\"124\", \"Not-A.Brand\";v=\"99\""])),
            "hints_mismatch",
            "hints_mismatch: sec-ch-ua names \"Microsoft Edge\", the user agent chrome",
        ),
        (
            seen("curl with Windows Chrome's user agent and a Linux platform hint", &curl(&url, &["-A", CHROME, "-H", lang, "-H", "Sec-CH-UA-Platform: \"Linux\""])),
            "hints_mismatch",
            "hints_mismatch: sec-ch-ua-platform says \"Linux\", the user agent windows",
        ),
        (seen("python urllib with Chrome's user agent", &python(&url, urllib, CHROME)), "headers_missing", "headers_missing: no accept"),
        (seen("python requests with Chrome's user agent", &python(&url, requests, CHROME)), "headers_missing", "headers_missing: no accept-language"),
        (seen("python requests with Chrome's user agent and a language", &python(&url, requests_lang, CHROME)), "consistent", "none"),
        (seen("python requests with Firefox's user agent", &python(&url, requests, FIREFOX)), "headers_missing", "headers_missing: no accept-language"),
    ];
    check(&fg, &cases);
}

#[test]
fn headless_chromium_passes_as_itself_and_its_hints_betray_another_user_agent() {
    let up = Upstream::start("echo");
    let fg = Flowgate::start("", &rules(up.addr));
    let url = format!("http://{}/lp", fg.addr);
    let own = chromium(&url, None);
    let own_ua = own["headers"]["user-agent"].as_str().unwrap().to_string();
    // The same browser without "Headless" in its user agent: a real Chromium on Linux.
    let plain_ua = own_ua.replace("HeadlessChrome/", "Chrome/");
    let major = plain_ua
        .split("Chrome/")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .unwrap()
        .to_string();
    let old_ua = CHROME.replace(
        "Chrome/124",
        &format!("Chrome/{}", major.parse::<u32>().unwrap() - 20),
    );
    let windows_same = CHROME.replace("Chrome/124", &format!("Chrome/{major}"));
    // (client, user agent, flow, finding): the dressed-up runs at once, each in its profile.
    let dressed = [
        (
            "chromium --headless with its user agent unheadlessed",
            plain_ua.as_str(),
            "consistent",
            "none",
        ),
        (
            "chromium --headless as Windows Chrome 20 versions older",
            old_ua.as_str(),
            "hints_mismatch",
            "hints_mismatch: sec-ch-ua says Chromium",
        ),
        (
            "chromium --headless as Firefox",
            FIREFOX,
            "hints_mismatch",
            "hints_mismatch: sec-ch-ua sent by a firefox user agent",
        ),
        (
            "chromium --headless as Windows Chrome of its own version",
            windows_same.as_str(),
            "hints_mismatch",
            "hints_mismatch: sec-ch-ua-platform says \"Linux\", the user agent windows",
        ),
    ];
    let echoes: Vec<Value> = std::thread::scope(|s| {
        let runs: Vec<_> = (dressed.iter())
            .map(|(_, ua, _, _)| s.spawn(|| chromium(&url, Some(ua))))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut cases = vec![(seen("chromium --headless", &own), "consistent", "none")];
    for ((client, _, flow, finding), echo) in dressed.iter().zip(&echoes) {
        cases.push((seen(client, echo), *flow, *finding));
    }
    check(&fg, &cases);
}
