//! Which `.mmdb` files load: every corrupt one in the bad-data corpus is refused, naming the
//! file; a database in ip-location-db's layout (an empty description) loads and answers.

mod common;

use std::time::Duration;

use common::*;
use flowgate::identity::Mmdb;
use flowgate::problem::Problems;

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
fn an_ip_location_db_country_database_with_an_empty_description_loads() {
    // Written by tests/data/ip-location-db/make-country-fixture.py in that project's layout.
    let path = data("ip-location-db/country-ipv4.mmdb");
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.windows(13).any(|w| w == b"Kdescription\xe0"),
        "the fixture's description is an empty map"
    );
    let mut problems = Problems::new();
    let db = Mmdb::open(&path, &mut problems).unwrap_or_else(|| panic!("{problems}"));
    let country = |ip: &str| {
        db.country(ip.parse().unwrap())
            .map(|c| c.as_str().to_string())
    };
    assert_eq!(country("1.0.0.1").as_deref(), Some("AU"));
    assert_eq!(country("81.2.69.142").as_deref(), Some("GB"));
    assert_eq!(country("8.8.8.8").as_deref(), Some("US"));
    assert_eq!(country("9.9.9.9"), None);

    // The same file with one node pointing back at the root: the tree walk refuses it.
    let mut broken = bytes.clone();
    broken[6..9].copy_from_slice(&[0, 0, 0]);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("country-ipv4.mmdb");
    std::fs::write(&bad, broken).unwrap();
    let mut problems = Problems::new();
    assert!(Mmdb::open(&bad, &mut problems).is_none());
    assert!(
        problems.to_string().contains(
            "country-ipv4.mmdb: not a valid MaxMind database: invalid database: search tree"
        ),
        "{problems}"
    );
}
