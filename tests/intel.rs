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

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A ustar archive holding one file, as MaxMind's GeoLite2 downloads do (in a folder).
fn tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

#[test]
fn intel_update_validates_downloads_and_swaps_them_in_atomically() {
    let country = std::fs::read(data("maxmind/GeoIP2-Country-Test.mmdb")).unwrap();
    let asn = std::fs::read(data("maxmind/GeoLite2-ASN-Test.mmdb")).unwrap();
    let server = serve_files(vec![
        ("/tor.txt", b"185.220.101.1\n185.220.101.2\n".to_vec()),
        ("/country.mmdb.gz", gzip(&country)),
        (
            "/GeoLite2-ASN.tar.gz",
            gzip(&tar("GeoLite2-ASN_20261122/GeoLite2-ASN.mmdb", &asn)),
        ),
        ("/truncated.mmdb", country[..country.len() / 2].to_vec()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("anon.mmdb"), b"the old file").unwrap();
    std::fs::write(d.join("dc.txt"), b"10.0.0.0/8\n").unwrap();
    std::env::set_var("FLOWGATE_TEST_LICENSE", "k3y");
    let config = format!(
        "rules: rules\nevents: {{ sink: none }}\nintel:\n  \
         country: {{ file: country.mmdb, url: \"http://{server}/country.mmdb.gz\" }}\n  \
         asn: {{ file: asn.mmdb, url: \"http://{server}/GeoLite2-ASN.tar.gz?license_key=${{FLOWGATE_TEST_LICENSE}}&suffix=tar.gz\" }}\n  \
         anonymous: {{ file: anon.mmdb, url: \"http://{server}/truncated.mmdb\" }}\n  \
         lists:\n    tor: {{ file: tor.txt, url: \"http://{server}/tor.txt\", anonymous: tor }}\n    \
         dc: {{ file: dc.txt, url: \"http://{server}/gone.txt\" }}\n"
    );
    std::fs::create_dir_all(d.join("rules")).unwrap();
    std::fs::write(d.join("rules/r.yaml"), "{}\n").unwrap();
    std::fs::write(d.join("flowgate.yaml"), config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["intel", "update", "-c"])
        .arg(d.join("flowgate.yaml"))
        .env("FLOWGATE_TEST_LICENSE", "k3y")
        .output()
        .unwrap();
    let text = said(&out);
    assert_eq!(out.status.code(), Some(1), "two sources failed: {text}");
    assert_eq!(
        std::fs::read(d.join("country.mmdb")).unwrap(),
        country,
        "gunzipped: {text}"
    );
    assert_eq!(
        std::fs::read(d.join("asn.mmdb")).unwrap(),
        asn,
        "taken out of the tar.gz: {text}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("tor.txt")).unwrap(),
        "185.220.101.1\n185.220.101.2\n"
    );
    assert_eq!(
        std::fs::read(d.join("anon.mmdb")).unwrap(),
        b"the old file",
        "a truncated download never replaces"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("dc.txt")).unwrap(),
        "10.0.0.0/8\n",
        "a failed download never replaces"
    );
    assert!(
        text.contains("intel.anonymous") && text.contains("refused"),
        "{text}"
    );
    assert!(
        text.contains("intel.lists.dc") && text.contains("HTTP 404"),
        "{text}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".download"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left behind");
}

/// A database in the DB-IP / ip-location-db layout (`country_code`, `city`, `state1`), as
/// operators without a MaxMind licence use.
fn dbip_database(path: &Path, database_type: &str, net: &str, record: serde_json::Value) {
    use maxminddb_writer::{metadata, paths::IpAddrWithMask, Database};
    let mut db = Database::default();
    db.metadata.ip_version = metadata::IpVersion::V6;
    db.metadata.database_type = database_type.into();
    db.metadata.binary_format_major_version = 2;
    db.metadata.languages = vec!["en".into()];
    db.metadata.build_epoch = 1_795_000_000;
    db.metadata
        .description
        .insert("en".into(), format!("{database_type} fixture"));
    let value = db.insert_value(record).unwrap();
    let net: IpNet = net.parse().unwrap();
    let addr = match net.network() {
        IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_compatible()),
        v6 => v6,
    };
    let mask = if net.network().is_ipv4() {
        net.prefix_len() + 96
    } else {
        net.prefix_len()
    };
    db.insert_node(IpAddrWithMask::new(addr, mask), value);
    let file = std::fs::File::create(path).unwrap();
    db.write_to(std::io::BufWriter::new(file)).unwrap();
}

#[test]
fn the_dbip_layout_answers_too() {
    let dir = tempfile::tempdir().unwrap();
    let city = dir.path().join("dbip-city.mmdb");
    dbip_database(
        &city,
        "DBIP-City-Lite",
        "203.0.113.0/24",
        serde_json::json!({"country_code": "DE", "city": "Berlin", "state1": "Land Berlin"}),
    );
    let asn = dir.path().join("dbip-asn.mmdb");
    dbip_database(
        &asn,
        "DBIP-ASN-Lite",
        "203.0.113.0/24",
        serde_json::json!({"autonomous_system_number": 64500u32, "autonomous_system_organization": "Example Net"}),
    );
    let mut problems = Problems::new();
    let city = Mmdb::open(&city, &mut problems).unwrap_or_else(|| panic!("{problems}"));
    let asn = Mmdb::open(&asn, &mut problems).unwrap_or_else(|| panic!("{problems}"));
    let ip: IpAddr = "203.0.113.9".parse().unwrap();
    assert_eq!(
        city.country(ip).map(|c| c.as_str().to_string()).as_deref(),
        Some("DE")
    );
    let (c, r) = city.place(ip);
    assert_eq!(
        (c.as_deref(), r.as_deref()),
        (Some("Berlin"), Some("Land Berlin"))
    );
    assert_eq!(asn.asn(ip), (Some(64500), Some("Example Net")));
    assert_eq!(city.country("198.51.100.1".parse().unwrap()), None);
}
