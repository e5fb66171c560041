//! `flowgate events forget` in ClickHouse: every MergeTree table of the configured database
//! that has a `click_id` column loses the visitor's rows — found by `ip`, then by the
//! click ids those rows carry, so conversions (which have no `ip`) go with their clicks.
//!
//! Current servers (23.3+) get a lightweight `DELETE FROM`: rows are masked at once and
//! dropped by later merges. Older ones get `ALTER TABLE ... DELETE`, a mutation that
//! rewrites the parts holding the rows (on 18.16, every part of the table). Either way this
//! waits until the rows no longer count, so "removed" means gone from every query.

use std::time::{Duration, Instant};

use super::{qualified, quote};
use crate::config::{ClickHouseConfig, HttpSinkConfig};
use crate::url::encode_url;

/// How long a mutation may take before forget gives up waiting (it still runs on).
const MUTATION_WAIT: Duration = Duration::from_secs(120);
/// Click ids per statement, well under the server's 256 KiB query limit.
const IDS_PER_STATEMENT: usize = 2000;

/// A ClickHouse server, as the HTTP sink reaches it.
pub struct Server {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
    database: String,
    /// `scheme://host:port`, for messages: never the path, query or credentials.
    name: String,
}

/// Whose rows go.
pub enum Whom<'a> {
    /// The addresses as stored (full and pseudonyms).
    Ips(&'a [String]),
    ClickId(&'a str),
}

/// What one table lost.
#[derive(Debug)]
pub struct Erased {
    pub table: String,
    pub rows: u64,
    /// `DELETE FROM` or `ALTER TABLE ... DELETE`; `None` when nothing matched.
    pub how: Option<&'static str>,
}

impl Server {
    pub fn new(http: &HttpSinkConfig, ch: &ClickHouseConfig) -> Server {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(http.timeout.0.max(Duration::from_secs(10))))
            .timeout_connect(Some(http.timeout.0.min(Duration::from_secs(5))))
            .http_status_as_error(false)
            .build()
            .into();
        let url = encode_url(&http.url);
        Server {
            agent,
            name: server_name(&url),
            url,
            headers: http.resolved_headers().to_vec(),
            database: ch.database.value.clone(),
        }
    }

    /// `ClickHouse at http://127.0.0.1:8123`, the words every error of this module starts with.
    pub fn name(&self) -> String {
        format!("ClickHouse at {}", self.name)
    }

    /// Runs one statement; the answer's body (TSV) or why not.
    fn query(&self, sql: &str) -> Result<String, String> {
        let mut req = self.agent.post(&self.url);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let fail = |e: String| format!("{}: {e}", self.name());
        let resp = req
            .send(sql)
            .map_err(|e| fail(format!("unreachable ({e})")))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .read_to_string()
            .map_err(|e| fail(e.to_string()))?;
        if status != 200 {
            let first = body.lines().next().unwrap_or("").trim();
            return Err(fail(format!("HTTP {status}: {first}")));
        }
        Ok(body)
    }

    fn count(&self, table: &str, cond: &str) -> Result<u64, String> {
        let sql = format!("SELECT count() FROM {table} WHERE {cond} FORMAT TSV");
        let body = self.query(&sql)?;
        body.trim()
            .parse()
            .map_err(|_| format!("{}: count() answered {body:?}", self.name()))
    }

    /// True from 23.3, where `DELETE FROM` is no longer experimental.
    fn has_lightweight_delete(&self) -> Result<bool, String> {
        let v = self.query("SELECT version() FORMAT TSV")?;
        let mut parts = v.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        Ok((major, minor) >= (23, 3))
    }

    /// MergeTree tables of the database with a `click_id` column, and whether each has `ip`.
    fn tables(&self) -> Result<Vec<(String, bool)>, String> {
        let db = quote(&self.database);
        let engines = self.query(&format!(
            "SELECT name, engine FROM system.tables WHERE database = {db} FORMAT TSV"
        ))?;
        let columns = self.query(&format!(
            "SELECT table, name FROM system.columns WHERE database = {db} \
             AND name IN ('click_id', 'ip') FORMAT TSV"
        ))?;
        let has = |table: &str, column: &str| {
            columns
                .lines()
                .any(|l| l.split_once('\t') == Some((table, column)))
        };
        let tables: Vec<(String, bool)> = engines
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(name, engine)| engine.ends_with("MergeTree") && has(name, "click_id"))
            .map(|(name, _)| (unescape_tsv(name), has(name, "ip")))
            .collect();
        if tables.is_empty() {
            return Err(format!(
                "{}: no table of database {} has a click_id column (is the schema loaded?)",
                self.name(),
                self.database
            ));
        }
        Ok(tables)
    }
}

/// Deletes `whom`'s rows from every table that holds events; what each table lost.
pub fn erase(server: &Server, whom: &Whom) -> Result<Vec<Erased>, String> {
    let tables = server.tables()?;
    let lightweight = server.has_lightweight_delete()?;
    let mut ids: Vec<String> = Vec::new();
    let ips = match whom {
        Whom::ClickId(id) => {
            ids.push(id.to_string());
            None
        }
        Whom::Ips([]) => return Ok(Vec::new()),
        Whom::Ips(ips) => Some(list(ips.iter().map(String::as_str))),
    };
    if let Some(ips) = &ips {
        for (table, _) in tables.iter().filter(|(_, has_ip)| *has_ip) {
            let t = qualified(&server.database, table);
            let sql = format!("SELECT DISTINCT click_id FROM {t} WHERE ip IN {ips} FORMAT TSV");
            ids.extend(server.query(&sql)?.lines().map(unescape_tsv));
        }
        ids.sort();
        ids.dedup();
    }
    let mut erased = Vec::new();
    for (table, has_ip) in &tables {
        let t = qualified(&server.database, table);
        let mut conditions: Vec<String> = ids
            .chunks(IDS_PER_STATEMENT)
            .map(|c| format!("click_id IN {}", list(c.iter().map(String::as_str))))
            .collect();
        if let (Some(ips), true) = (&ips, has_ip) {
            match conditions.first_mut() {
                Some(first) => *first = format!("ip IN {ips} OR {first}"),
                None => conditions.push(format!("ip IN {ips}")),
            }
        }
        let mut done = Erased {
            table: format!("{}.{table}", server.database),
            rows: 0,
            how: None,
        };
        for cond in &conditions {
            let rows = server.count(&t, cond)?;
            if rows == 0 {
                continue;
            }
            let (sql, how) = match lightweight {
                true => (format!("DELETE FROM {t} WHERE {cond}"), "DELETE FROM"),
                false => (
                    format!("ALTER TABLE {t} DELETE WHERE {cond}"),
                    "ALTER TABLE ... DELETE",
                ),
            };
            server.query(&sql)?;
            wait_gone(server, &t, cond)?;
            done.rows += rows;
            done.how = Some(how);
        }
        erased.push(done);
    }
    Ok(erased)
}

/// Mutations run in the background: wait until no row matches.
fn wait_gone(server: &Server, table: &str, cond: &str) -> Result<(), String> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        if server.count(table, cond)? == 0 {
            return Ok(());
        }
        if started.elapsed() > MUTATION_WAIT {
            return Err(format!(
                "{}: rows of {table} still there after {MUTATION_WAIT:?}; the mutation runs \
                 on (see system.mutations), run forget again later",
                server.name()
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// `('a', 'b')`.
fn list<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = values.map(quote).collect();
    format!("({})", quoted.join(", "))
}

/// TSV escapes `\t`, `\n` and `\\` in values.
fn unescape_tsv(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

/// `http://user:pw@host:8123/?x` -> `http://host:8123`.
fn server_name(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_named_without_credentials_path_or_query() {
        assert_eq!(
            server_name("http://u:secret@10.0.0.5:8123/?database=x"),
            "http://10.0.0.5:8123"
        );
        assert_eq!(
            server_name("https://ch.example.com"),
            "https://ch.example.com"
        );
    }

    #[test]
    fn tsv_values_are_read_back_as_stored() {
        assert_eq!(unescape_tsv(r"a\tb\\c\'d"), "a\tb\\c'd");
    }
}
