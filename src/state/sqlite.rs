//! The embedded store: SQLite (the bundled library) in WAL mode, so a second flowgate during an
//! upgrade and `flowgate events forget` work beside a running one — readers never block the
//! writer, and writers take turns within `busy_timeout`.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::keys::unhex;
use super::store::{CountDelta, Forget, Forgotten, SeenRow, Store, StoreError, StoredClick};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS clicks (
    click_id TEXT PRIMARY KEY,
    ts INTEGER NOT NULL,
    campaign TEXT,
    flow TEXT,
    route TEXT NOT NULL,
    source TEXT,
    query TEXT NOT NULL,
    source_params TEXT NOT NULL DEFAULT '{}',
    visitor TEXT NOT NULL,
    ip_key TEXT NOT NULL,
    is_unique INTEGER
);
CREATE INDEX IF NOT EXISTS clicks_ts ON clicks (ts);
CREATE INDEX IF NOT EXISTS clicks_ip_key ON clicks (ip_key);
CREATE INDEX IF NOT EXISTS clicks_visitor ON clicks (visitor);
CREATE TABLE IF NOT EXISTS seen (
    visitor TEXT NOT NULL,
    scope INTEGER NOT NULL,
    ip_key TEXT NOT NULL,
    seen INTEGER NOT NULL,
    PRIMARY KEY (visitor, scope)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_seen ON seen (seen);
CREATE INDEX IF NOT EXISTS seen_ip_key ON seen (ip_key);
CREATE TABLE IF NOT EXISTS caps (
    cap TEXT NOT NULL,
    window INTEGER NOT NULL,
    count INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (cap, window)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversions (
    click_id TEXT NOT NULL,
    status TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (click_id, status)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversions_ts ON conversions (ts);
";

/// Columns added after the first release of the store, for databases made before them.
const ADDED: &[(&str, &str, &str)] = &[("clicks", "source_params", "TEXT NOT NULL DEFAULT '{}'")];

pub struct Sqlite {
    db: Connection,
}

fn err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

impl Sqlite {
    /// Opens (or creates) the database, in WAL mode, with its tables.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let at = |e: rusqlite::Error| StoreError(format!("{}: {e}", path.display()));
        // Private from the start: SQLite gives its WAL and shared-memory files the same mode.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        let db = Connection::open(path).map_err(at)?;
        db.busy_timeout(Duration::from_secs(5)).map_err(at)?;
        let mode: String = db
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(at)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError(format!(
                "{}: cannot use WAL mode (journal mode is {mode})",
                path.display()
            )));
        }
        db.execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(at)?;
        db.execute_batch(SCHEMA).map_err(at)?;
        for (table, column, kind) in ADDED {
            let has: bool = db
                .query_row(
                    &format!(
                        "SELECT count(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"
                    ),
                    [column],
                    |r| r.get(0),
                )
                .map_err(at)?;
            if !has {
                // Another process may add it first; its error is then no error.
                let sql = format!("ALTER TABLE {table} ADD COLUMN {column} {kind}");
                if let Err(e) = db.execute_batch(&sql) {
                    if !e.to_string().contains("duplicate column") {
                        return Err(at(e));
                    }
                }
            }
        }
        Ok(Sqlite { db })
    }
}

/// SQLite keeps signed 64-bit integers; a scope is any 64 bits.
fn scope_in(s: u64) -> i64 {
    s as i64
}

impl Store for Sqlite {
    fn write(
        &mut self,
        clicks: &[StoredClick],
        counts: &[CountDelta],
    ) -> Result<Vec<u32>, StoreError> {
        let tx = self.db.transaction().map_err(err)?;
        {
            let mut click = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO clicks (click_id, ts, campaign, flow, route, source, \
                     query, visitor, ip_key, is_unique, source_params) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(err)?;
            let mut seen = tx
                .prepare_cached(
                    "INSERT INTO seen (visitor, scope, ip_key, seen) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (visitor, scope) DO UPDATE SET seen = max(seen, excluded.seen)",
                )
                .map_err(err)?;
            for c in clicks {
                click
                    .execute(params![
                        c.click_id,
                        c.ts_ms as i64,
                        c.campaign,
                        c.flow,
                        c.route,
                        c.source,
                        c.query,
                        c.visitor,
                        c.ip_key,
                        c.unique,
                        c.source_params
                    ])
                    .map_err(err)?;
                for s in &c.scopes {
                    seen.execute(params![c.visitor, scope_in(*s), c.ip_key, c.ts_ms as i64])
                        .map_err(err)?;
                }
            }
        }
        let mut totals = Vec::with_capacity(counts.len());
        {
            let now = crate::time::now_ms() as i64;
            let mut add = tx
                .prepare_cached(
                    "INSERT INTO caps (cap, window, count, updated) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (cap, window) DO UPDATE SET count = count + excluded.count, \
                     updated = excluded.updated RETURNING count",
                )
                .map_err(err)?;
            for d in counts {
                let total: i64 = add
                    .query_row(params![d.key, d.window, d.add, now], |r| r.get(0))
                    .map_err(err)?;
                totals.push(total.clamp(0, i64::from(u32::MAX)) as u32);
            }
        }
        tx.commit().map_err(err)?;
        Ok(totals)
    }

    fn seen_since(&mut self, since_ms: u64, limit: usize) -> Result<Vec<SeenRow>, StoreError> {
        let mut q = self
            .db
            .prepare("SELECT visitor, scope, seen FROM seen WHERE seen >= ?1 ORDER BY seen DESC LIMIT ?2")
            .map_err(err)?;
        let rows = q
            .query_map(params![since_ms as i64, limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (visitor, scope, seen) = row.map_err(err)?;
            if let Some(visitor) = unhex(&visitor) {
                out.push(SeenRow {
                    visitor,
                    scope: scope as u64,
                    seen_ms: seen.max(0) as u64,
                });
            }
        }
        Ok(out)
    }

    fn caps(&mut self) -> Result<Vec<(String, u32, u32)>, StoreError> {
        // SQLite takes the bare `count` from the row that has the max(window).
        let mut q = self
            .db
            .prepare("SELECT cap, max(window), count FROM caps GROUP BY cap")
            .map_err(err)?;
        let rows = q
            .query_map([], |r| {
                Ok((r.get(0)?, r.get::<_, u32>(1)?, r.get::<_, u32>(2)?))
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    fn purge(&mut self, before_ms: u64) -> Result<usize, StoreError> {
        let before = before_ms as i64;
        let tx = self.db.transaction().map_err(err)?;
        let clicks = tx
            .execute("DELETE FROM clicks WHERE ts < ?1", [before])
            .map_err(err)?;
        tx.execute("DELETE FROM seen WHERE seen < ?1", [before])
            .map_err(err)?;
        tx.execute("DELETE FROM caps WHERE updated < ?1", [before])
            .map_err(err)?;
        tx.execute("DELETE FROM conversions WHERE ts < ?1", [before])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(clicks)
    }

    fn forget(&mut self, who: &Forget) -> Result<Forgotten, StoreError> {
        let tx = self.db.transaction().map_err(err)?;
        let mut gone = Forgotten::default();
        match who {
            Forget::IpKeys(keys) => {
                for k in keys {
                    gone.clicks += tx
                        .execute("DELETE FROM clicks WHERE ip_key = ?1", [k])
                        .map_err(err)?;
                    gone.visitors += tx
                        .execute("DELETE FROM seen WHERE ip_key = ?1", [k])
                        .map_err(err)?;
                }
            }
            Forget::ClickId(id) => {
                let visitor: Option<String> = tx
                    .query_row(
                        "SELECT visitor FROM clicks WHERE click_id = ?1",
                        [id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(err)?;
                gone.clicks += tx
                    .execute("DELETE FROM clicks WHERE click_id = ?1", [id])
                    .map_err(err)?;
                tx.execute("DELETE FROM conversions WHERE click_id = ?1", [id])
                    .map_err(err)?;
                if let Some(v) = visitor {
                    gone.visitors += tx
                        .execute("DELETE FROM seen WHERE visitor = ?1", [v])
                        .map_err(err)?;
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(gone)
    }

    fn click(&mut self, id: &str) -> Result<Option<StoredClick>, StoreError> {
        let mut q = self
            .db
            .prepare_cached(
                "SELECT ts, campaign, flow, route, source, query, source_params, visitor, \
                 ip_key, is_unique FROM clicks WHERE click_id = ?1",
            )
            .map_err(err)?;
        q.query_row([id], |r| {
            Ok(StoredClick {
                click_id: id.to_string(),
                ts_ms: r.get::<_, i64>(0)?.max(0) as u64,
                campaign: r.get(1)?,
                flow: r.get(2)?,
                route: r.get(3)?,
                source: r.get(4)?,
                query: r.get(5)?,
                source_params: r.get(6)?,
                visitor: r.get(7)?,
                ip_key: r.get(8)?,
                unique: r.get(9)?,
                scopes: Vec::new(),
            })
        })
        .optional()
        .map_err(err)
    }

    fn converted(&mut self, click_id: &str, status: &str, ts_ms: u64) -> Result<bool, StoreError> {
        let mut q = self
            .db
            .prepare_cached(
                "INSERT OR IGNORE INTO conversions (click_id, status, ts) VALUES (?1, ?2, ?3)",
            )
            .map_err(err)?;
        let added = q
            .execute(params![click_id, status, ts_ms as i64])
            .map_err(err)?;
        Ok(added == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click(id: &str, ts: u64, ip_key: &str) -> StoredClick {
        StoredClick {
            click_id: id.into(),
            ts_ms: ts,
            campaign: Some("c".into()),
            flow: Some("f".into()),
            route: "offer".into(),
            source: None,
            query: "{}".into(),
            source_params: "{}".into(),
            visitor: super::super::keys::hex(&[ip_key.as_bytes()[1]; 16]),
            ip_key: ip_key.into(),
            unique: Some(true),
            scopes: vec![1, u64::MAX],
        }
    }

    #[test]
    fn clicks_seen_times_and_caps_are_kept_purged_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sqlite::open(&dir.path().join("s.db")).unwrap();
        let delta = |add| CountDelta {
            key: "c/f".into(),
            window: 5,
            add,
        };
        let totals = s
            .write(
                &[click("a", 1000, "k1"), click("b", 2000, "k2")],
                &[delta(2)],
            )
            .unwrap();
        assert_eq!(totals, [2]);
        // Another process's connection adds to the same count.
        let mut other = Sqlite::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(other.write(&[], &[delta(3)]).unwrap(), [5]);
        assert_eq!(s.caps().unwrap(), [("c/f".to_string(), 5, 5)]);
        let seen = s.seen_since(0, 10).unwrap();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0].seen_ms, 2000);
        assert!(seen.iter().any(|r| r.scope == u64::MAX));
        assert_eq!(s.seen_since(1500, 10).unwrap().len(), 2);
        let gone = other.forget(&Forget::IpKeys(vec!["k1".into()])).unwrap();
        assert_eq!(
            gone,
            Forgotten {
                clicks: 1,
                visitors: 2
            }
        );
        let gone = s.forget(&Forget::ClickId("b".into())).unwrap();
        assert_eq!(
            gone,
            Forgotten {
                clicks: 1,
                visitors: 2
            }
        );
        s.write(&[click("c", 500, "k3"), click("d", 5000, "k3")], &[])
            .unwrap();
        assert_eq!(s.purge(1000).unwrap(), 1);
    }

    #[test]
    fn a_click_is_found_by_id_on_a_reader_and_a_conversion_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut writer = Sqlite::open(&path).unwrap();
        let mut reader = Sqlite::open(&path).unwrap();
        assert_eq!(reader.click("a").unwrap(), None);
        let mut a = click("a", 1000, "k1");
        a.query = r#"{"sub1":"x"}"#.into();
        writer.write(&[a.clone()], &[]).unwrap();
        let found = reader.click("a").unwrap().unwrap();
        assert_eq!(
            found,
            StoredClick {
                scopes: vec![],
                ..a
            }
        );
        // A reader mid-transaction does not hold the writer up (WAL).
        let tx = reader.db.transaction().unwrap();
        let n: i64 = tx
            .query_row("SELECT count(*) FROM clicks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        writer.write(&[click("b", 2000, "k2")], &[]).unwrap();
        drop(tx);
        assert!(reader.click("b").unwrap().is_some());
        assert!(reader.converted("a", "approved", 1000).unwrap());
        assert!(
            !writer.converted("a", "approved", 1001).unwrap(),
            "a repeat"
        );
        assert!(reader.converted("a", "", 1002).unwrap(), "another status");
        writer.forget(&Forget::ClickId("a".into())).unwrap();
        assert_eq!(reader.click("a").unwrap(), None);
        assert!(reader.converted("a", "approved", 1003).unwrap());
    }

    #[test]
    fn a_store_made_before_source_params_gains_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(&SCHEMA.replace("source_params TEXT NOT NULL DEFAULT '{}',", ""))
            .unwrap();
        old.execute(
            "INSERT INTO clicks (click_id, ts, route, query, visitor, ip_key) \
             VALUES ('old', 1, 'r', '{}', 'v', 'k')",
            [],
        )
        .unwrap();
        drop(old);
        let mut s = Sqlite::open(&path).unwrap();
        assert_eq!(s.click("old").unwrap().unwrap().source_params, "{}");
        s.write(&[click("new", 2, "k2")], &[]).unwrap();
        assert!(Sqlite::open(&path).unwrap().click("new").unwrap().is_some());
    }
}
