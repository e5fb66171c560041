//! `flowgate events schema`: the DDL of `config/clickhouse/` with the operator's names and
//! click retention filled in. The files stay runnable as shipped (database `flowgate`, 90
//! days); this swaps those for the configured ones, leaving comments as they are.

use std::time::Duration;

const CURRENT: &str = include_str!("../../../config/clickhouse/flowgate.sql");
const FALLBACK: &str = include_str!("../../../config/clickhouse/flowgate-18.16.sql");

/// Which schema file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// `flowgate.sql`: ClickHouse 23.3 and later.
    Current,
    /// `flowgate-18.16.sql`: Debian's 18.16, which has no TTL.
    Fallback,
}

impl Schema {
    /// The table the sink inserts into, as the file names it.
    pub fn shipped_table(self) -> &'static str {
        match self {
            Schema::Current => "events",
            Schema::Fallback => "clicks",
        }
    }
}

/// The DDL for `database`, inserting into `table`, keeping rows for `retain`.
pub fn schema(which: Schema, database: &str, table: &str, retain: Duration) -> String {
    let text = match which {
        Schema::Current => CURRENT,
        Schema::Fallback => FALLBACK,
    };
    let entry = format!("flowgate.{}", which.shipped_table());
    let ttl = interval(retain);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.trim_start().starts_with("--") {
            out.push_str(line);
        } else {
            let line = line
                .replace(&entry, &format!("{database}.{table}"))
                .replace("flowgate.", &format!("{database}."))
                .replace("EXISTS flowgate;", &format!("EXISTS {database};"))
                .replace("INTERVAL 90 DAY", &ttl);
            out.push_str(&line);
        }
        out.push('\n');
    }
    out
}

/// The largest whole unit: `INTERVAL 90 DAY`, `INTERVAL 36 HOUR`, `INTERVAL 90 SECOND`.
fn interval(d: Duration) -> String {
    let s = d.as_secs().max(1);
    match s {
        s if s % 86_400 == 0 => format!("INTERVAL {} DAY", s / 86_400),
        s if s % 3600 == 0 => format!("INTERVAL {} HOUR", s / 3600),
        s => format!("INTERVAL {s} SECOND"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn the_shipped_names_and_retention_give_the_file_as_it_is() {
        let ddl = schema(
            Schema::Current,
            "flowgate",
            "events",
            Duration::from_secs(90 * DAY),
        );
        assert_eq!(ddl, CURRENT);
    }

    #[test]
    fn the_configured_names_and_retention_replace_the_shipped_ones() {
        let ddl = schema(
            Schema::Current,
            "analytics",
            "fg",
            Duration::from_secs(30 * DAY),
        );
        let code: String = ddl.lines().filter(|l| !l.starts_with("--")).collect();
        assert!(code.contains("CREATE DATABASE IF NOT EXISTS analytics;"));
        assert!(code.contains("CREATE TABLE IF NOT EXISTS analytics.fg"));
        assert!(code.contains("FROM analytics.fg"));
        assert!(code.contains("TO analytics.clicks AS"));
        assert!(!code.contains("flowgate"), "{code}");
        assert_eq!(code.matches("INTERVAL 30 DAY").count(), 3);
        assert!(!code.contains("90 DAY"));
        assert_eq!(interval(Duration::from_secs(36 * 3600)), "INTERVAL 36 HOUR");
        assert_eq!(interval(Duration::from_secs(90)), "INTERVAL 90 SECOND");
    }

    #[test]
    fn the_fallback_inserts_into_its_one_table() {
        let ddl = schema(Schema::Fallback, "fg", "clicks", Duration::from_secs(DAY));
        let code: String = ddl.lines().filter(|l| !l.starts_with("--")).collect();
        assert!(code.contains("CREATE TABLE IF NOT EXISTS fg.clicks"));
        assert!(
            !code.contains("TTL") && !code.contains("flowgate"),
            "{code}"
        );
    }
}
