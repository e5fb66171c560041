//! A full disk under the file sink: batches that do not fit are counted `failed` and leave
//! nothing behind, so when space returns the file holds whole lines only, each of them
//! counted `written`. The disk is a real 256 KiB tmpfs (mounting it needs root, as CI has).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_never_leaves_a_torn_event_and_every_line_was_counted() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mounting a tmpfs needs root (CI runs as root)");
    let _mount = Mount(disk.clone());
    let events = disk.join("events");
    std::fs::create_dir(&events).unwrap();

    let rules = "routes: { page: { respond: { body: ok } } }\n\
                 campaigns: [ { id: c, flows: [ { name: f, to: page } ] } ]\n";
    let extra = format!(
        "events: {{ sink: file, file: {{ dir: {} }}, batch: {{ max_wait: 50ms, max_events: 7 }} }}\n",
        events.display()
    );
    // The harness's events block goes to the tmpfs instead.
    let config = setup_with_events(dir.path(), rules, &extra);
    // Declared after the mount, so flowgate stops (on drop) before the disk goes.
    let fg = spawn(&config);
    let (addr, admin) = (fg.addr(), fg.admin());

    // Fill the disk to within a few events of full.
    let filler = disk.join("filler");
    let _ = std::fs::write(&filler, vec![b'x'; 250 * 1024]);
    let long = "a".repeat(900);
    let mut sent = 0;
    while metric_at(admin, r#"flowgate_events_total{outcome="failed"}"#) == 0.0 {
        assert!(sent < 2000, "the disk never filled");
        let r = get(
            addr,
            &format!("/?utm_source={long}"),
            &[("User-Agent", &long)],
        );
        assert_eq!(r.status, 200);
        sent += 1;
    }
    // Space returns; more events are written after the failed ones.
    std::fs::remove_file(&filler).unwrap();
    let failed_at = metric_at(admin, r#"flowgate_events_total{outcome="failed"}"#);
    let written_before = metric_at(admin, r#"flowgate_events_total{outcome="written"}"#);
    for _ in 0..20 {
        get(addr, "/after", &[("User-Agent", "after")]);
    }
    wait_for(
        "written after space returned",
        Duration::from_secs(10),
        || metric_at(admin, r#"flowgate_events_total{outcome="written"}"#) >= written_before + 20.0,
    );
    let written = metric_at(admin, r#"flowgate_events_total{outcome="written"}"#);
    let failed = metric_at(admin, r#"flowgate_events_total{outcome="failed"}"#);
    assert!(failed >= failed_at && failed > 0.0);

    // Every byte in the files is a whole JSON line, and their number is what was counted.
    let mut lines = 0;
    for entry in std::fs::read_dir(&events).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("a torn event ({e}): {}", &line[..line.len().min(80)]));
            lines += 1;
        }
    }
    assert_eq!(
        lines as f64, written,
        "lines in the files = events counted written"
    );
}
