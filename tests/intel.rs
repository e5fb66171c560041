//! Visitor intelligence against MaxMind's own test data: every network of the source records
//! answers what the record says, and every corrupt database is refused, never a panic or hang.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use common::*;
use flowgate::identity::{Anonymous, Mmdb};
use flowgate::problem::Problems;
use ipnet::IpNet;

/// `(network, record)` for every entry of a MaxMind source-data file.
fn records(name: &str) -> Vec<(IpNet, serde_json::Value)> {
    let text = std::fs::read_to_string(data(&format!("maxmind/source-data/{name}.json"))).unwrap();
    let list: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&text).unwrap();
    list.into_iter()
        .flat_map(|m| m.into_iter())
        .map(|(net, rec)| (net.parse().unwrap(), rec))
        .collect()
}

fn open(name: &str) -> Mmdb {
    let mut problems = Problems::new();
    let db = Mmdb::open(&data(&format!("maxmind/{name}.mmdb")), &mut problems);
    assert!(problems.is_empty(), "{problems}");
    db.unwrap()
}

/// The first and last address of a network, and the IPv4 form of IPv4-in-IPv6 ones.
fn probes(net: &IpNet) -> Vec<IpAddr> {
    let mut v = vec![net.network(), net.broadcast()];
    if let (IpAddr::V6(a), IpAddr::V6(b)) = (net.network(), net.broadcast()) {
        let (sa, sb) = (a.segments(), b.segments());
        if sa[..6] == [0; 6] && sb[..6] == [0; 6] && net.prefix_len() >= 96 {
            v.push(IpAddr::V4(std::net::Ipv4Addr::from(u128::from(a) as u32)));
        }
    }
    v
}

fn text(v: &serde_json::Value) -> Option<&str> {
    v.as_str()
}

#[test]
fn country_answers_the_location_country_of_every_network() {
    let db = open("GeoIP2-Country-Test");
    let mut checked = 0;
    for (net, rec) in records("GeoIP2-Country-Test") {
        let want = text(&rec["country"]["iso_code"]);
        for ip in probes(&net) {
            assert_eq!(
                db.country(ip).map(|c| c.as_str().to_string()).as_deref(),
                want,
                "{ip} in {net}"
            );
            checked += 1;
        }
    }
    println!("country: {checked} addresses checked");
    assert!(checked > 500);
}

#[test]
fn city_answers_city_region_and_country() {
    let db = open("GeoIP2-City-Test");
    let mut checked = 0;
    for (net, rec) in records("GeoIP2-City-Test") {
        let city = text(&rec["city"]["names"]["en"]);
        let region = match (
            text(&rec["country"]["iso_code"]),
            text(&rec["subdivisions"][0]["iso_code"]),
        ) {
            (Some(c), Some(r)) => Some(format!("{c}-{r}")),
            _ => None,
        };
        for ip in probes(&net) {
            let (c, r) = db.place(ip);
            assert_eq!(c.as_deref(), city, "city of {ip} in {net}");
            assert_eq!(r.as_deref(), region.as_deref(), "region of {ip} in {net}");
            assert_eq!(
                db.country(ip).map(|c| c.as_str().to_string()).as_deref(),
                text(&rec["country"]["iso_code"])
            );
            checked += 1;
        }
    }
    println!("city: {checked} addresses checked");
    assert!(checked > 500);
}

#[test]
fn asn_answers_number_and_organisation() {
    let db = open("GeoLite2-ASN-Test");
    let mut checked = 0;
    for (net, rec) in records("GeoLite2-ASN-Test") {
        let number = rec["autonomous_system_number"].as_u64().map(|n| n as u32);
        let org = text(&rec["autonomous_system_organization"]);
        for ip in probes(&net) {
            assert_eq!(db.asn(ip), (number, org), "{ip} in {net}");
            checked += 1;
        }
    }
    println!("asn: {checked} addresses checked");
    assert!(checked > 300);
}

#[test]
fn anonymous_flags_and_an_empty_record_is_not_anonymous() {
    let db = open("GeoIP2-Anonymous-IP-Test");
    for (net, rec) in records("GeoIP2-Anonymous-IP-Test") {
        let flag = |k: &str| rec[k].as_bool().unwrap_or(false);
        let want: Vec<&str> = [
            ("vpn", flag("is_anonymous_vpn")),
            ("tor", flag("is_tor_exit_node")),
            ("proxy", flag("is_public_proxy")),
            ("hosting", flag("is_hosting_provider")),
            ("residential", flag("is_residential_proxy")),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| n)
        .collect();
        for ip in probes(&net) {
            assert_eq!(
                db.anonymous(ip).names().collect::<Vec<_>>(),
                want,
                "{ip} in {net}"
            );
        }
    }
    // 8.8.8.8 has an empty record, not "not found": not anonymous.
    assert_eq!(
        db.anonymous("8.8.8.8".parse().unwrap()),
        Anonymous::default()
    );
}

#[test]
fn every_corrupt_database_is_refused_naming_the_file() {
    let dir = data("maxmind/bad-data");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mmdb"))
        .collect();
    files.sort();
    assert!(files.len() >= 21, "{} bad databases", files.len());
    for path in files {
        let p = path.clone();
        // Each gets its own thread and a deadline: a hang fails the test instead of CI.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut problems = Problems::new();
            let db = Mmdb::open(&p, &mut problems);
            let _ = tx.send((db.is_some(), problems.to_string()));
        });
        let (opened, message) = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{} hung or panicked", path.display()));
        assert!(!opened, "{} was accepted", path.display());
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(message.contains(name), "{message}");
    }
}

#[test]
fn a_corrupt_database_on_reload_keeps_the_previous_one_serving() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("country.mmdb");
    std::fs::copy(data("maxmind/GeoIP2-Country-Test.mmdb"), &db).unwrap();
    let rules = "routes: { gb: { respond: { body: gb } }, other: { respond: { body: other } } }\n\
                 campaigns: [ { id: c, flows: [ { name: uk, if: { country: GB }, to: gb }, { name: rest, to: other } ] } ]\n";
    let fg = Flowgate::start(&format!("intel: {{ country: {} }}\n", db.display()), rules);
    let gb = || fg.get("/", &[("X-Forwarded-For", "81.2.69.142")]).body;
    assert_eq!(gb(), "gb");
    std::fs::copy(
        data("maxmind/bad-data/libmaxminddb-corrupt-search-tree.mmdb"),
        &db,
    )
    .unwrap();
    wait_for("refused", Duration::from_secs(5), || {
        fg.metric(r#"flowgate_reloads_total{outcome="error"}"#) >= 1.0
    });
    assert_eq!(gb(), "gb", "the previous database keeps answering");
    assert_eq!(get(fg.admin, "/readyz", &[]).status, 200);
}

#[test]
fn lists_can_mark_anonymity_and_skip_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let tor = dir.path().join("tor.txt");
    std::fs::write(
        &tor,
        "# exits\n185.220.101.1\nnot an address\n2001:db8::/32\n",
    )
    .unwrap();
    let extra = format!(
        "intel: {{ lists: {{ tor: {{ file: {}, anonymous: tor, skip_bad_lines: true }} }} }}\n",
        tor.display()
    );
    let rules = "routes: { safe: { respond: { body: safe } }, offer: { respond: { body: offer } } }\n\
                 campaigns: [ { id: c, flows: [ { name: anon, if: { anonymous: [tor, vpn] }, to: safe }, { name: rest, to: offer } ] } ]\n";
    let fg = Flowgate::start(&extra, rules);
    assert_eq!(
        fg.get("/", &[("X-Forwarded-For", "185.220.101.1")]).body,
        "safe"
    );
    assert_eq!(
        fg.get("/", &[("X-Forwarded-For", "2001:db8::5")]).body,
        "safe"
    );
    assert_eq!(
        fg.get("/", &[("X-Forwarded-For", "198.51.100.1")]).body,
        "offer"
    );
    assert_eq!(
        fg.metric(r#"flowgate_intel_skipped_lines{source="tor"}"#),
        1.0
    );
    let ev = fg.events(3);
    assert_eq!(ev[0]["anonymous"], serde_json::json!(["tor"]));
    assert!(Path::new(&tor).exists());
}

#[test]
fn region_city_as_org_os_browser_and_device_conditions_route() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/main.yaml"),
        r#"
routes: { a: { respond: { body: a } }, b: { respond: { body: b } } }
campaigns:
  - id: c
    flows:
      - { name: london, if: { city: [london] }, to: a }
      - { name: england, if: { region: [GB-ENG] }, to: a }
      - { name: telstra, if: { as_org: "(?i)telstra" }, to: a }
      - { name: tv, if: { device: [tv, console] }, to: a }
      - { name: apple, if: { all: [ { os: ios }, { browser: [safari] } ] }, to: a }
      - { name: rest, to: b }
"#,
    )
    .unwrap();
    let config = format!(
        "rules: rules\nevents: {{ sink: none }}\nintel: {{ city: {}, asn: {} }}\n",
        data("maxmind/GeoIP2-City-Test.mmdb").display(),
        data("maxmind/GeoLite2-ASN-Test.mmdb").display()
    );
    std::fs::write(dir.path().join("flowgate.yaml"), config).unwrap();
    let config = flowgate::config::Config::load(&dir.path().join("flowgate.yaml")).unwrap();
    let snap = flowgate::snapshot::Snapshot::build(&config, 1).unwrap();
    let flow = |ip: &str, ua: &str| {
        let req = flowgate::snapshot::SampleRequest {
            url: "http://x/".into(),
            ip: Some(ip.parse().unwrap()),
            ua: Some(ua.into()),
            ..Default::default()
        };
        let x = snap.explain(&req).unwrap();
        (x.decision.flow.unwrap(), x.visitor.city, x.visitor.region)
    };
    assert_eq!(
        flow("81.2.69.160", CHROME),
        (
            "london".into(),
            Some("London".into()),
            Some("GB-ENG".into())
        )
    );
    assert_eq!(
        flow("2.125.160.216", CHROME).0,
        "england",
        "Boxford is in England"
    );
    assert_eq!(flow("1.128.0.1", CHROME).0, "telstra");
    assert_eq!(flow("198.51.100.1", "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)").0, "tv");
    assert_eq!(flow("198.51.100.1", IPHONE).0, "apple");
    assert_eq!(flow("198.51.100.1", CHROME).0, "rest");
}
