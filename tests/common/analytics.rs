//! A known day of traffic for the ClickHouse tests: visitors from three countries (the
//! MaxMind test databases), a bot, two campaigns and conversions with a status that changes,
//! so every documented query has numbers to be checked against.

use std::net::SocketAddr;
use std::path::Path;

use super::client::get;
use super::CHROME;

/// `spring` splits bots, UK visitors and the rest; `summer` takes everyone.
pub const RULES: &str = "\
routes:
  offer: { respond: { body: offer } }
  safe: { respond: { body: safe } }
campaigns:
  - id: spring
    match: { path_prefix: /spring }
    flows:
      - { name: bots, if: { bot: true }, to: safe }
      - { name: uk, if: { country: [GB] }, to: offer }
      - { name: rest, to: safe }
  - id: summer
    match: { path_prefix: /summer }
    flows:
      - { name: all, to: offer }
";

pub const GB_A: &str = "81.2.69.142";
pub const GB_B: &str = "2.125.160.216";
pub const US: &str = "216.160.83.56";
pub const SE: &str = "89.160.20.112";
const CURL: &str = "curl/8.5.0";

/// The config lines the known traffic needs besides `events:`.
pub fn config() -> String {
    format!(
        "intel: {{ country: {} }}\npostback: {{ path: /postback }}\n",
        super::data("maxmind/GeoIP2-Country-Test.mmdb").display()
    )
}

/// 11 clicks: spring/uk (GB) 3 from GB_A with utm_source=fb and 1 from GB_B with gg;
/// spring/rest (US) 2 humans, fb; spring/bots 1 bot from US, fb; summer/all (SE) 3 humans
/// and 1 bot from one address, no utm_source.
pub fn visit(addr: SocketAddr) -> usize {
    let visits: [(&str, &str, &str, usize); 6] = [
        ("/spring?utm_source=fb&gclid=g1", GB_A, CHROME, 3),
        ("/spring?utm_source=gg", GB_B, CHROME, 1),
        ("/spring?utm_source=fb", US, CHROME, 2),
        ("/spring?utm_source=fb", US, CURL, 1),
        ("/summer", SE, CHROME, 3),
        ("/summer", SE, CURL, 1),
    ];
    let mut n = 0;
    for (path, ip, ua, times) in visits {
        for _ in 0..times {
            let r = get(addr, path, &[("X-Forwarded-For", ip), ("User-Agent", ua)]);
            assert_eq!(r.status, 200, "{path} from {ip}: {}", r.body);
            n += 1;
        }
    }
    n
}

/// The clicks that convert, picked from stored rows (`campaign`, `flow`, `ip`, `bot`,
/// `click_id`): one of GB_A's, GB_B's, a spring/rest human's and a summer human's.
pub struct Converting {
    pub gb_a: String,
    pub gb_b: String,
    pub rest: String,
    pub summer: String,
}

impl Converting {
    pub fn pick(rows: &[serde_json::Value]) -> Converting {
        let find = |flow: &str, ip: &str| {
            rows.iter()
                .find(|r| r["flow"] == flow && r["ip"] == ip && !is_bot(r))
                .and_then(|r| r["click_id"].as_str())
                .unwrap_or_else(|| panic!("no {flow} click from {ip} in {rows:?}"))
                .to_string()
        };
        Converting {
            gb_a: find("uk", GB_A),
            gb_b: find("uk", GB_B),
            rest: find("rest", US),
            summer: find("all", SE),
        }
    }

    /// 5 postbacks: GB_A's click pending then approved (10), GB_B's approved (5.5), the
    /// spring/rest click rejected (3), the summer click pending (7).
    pub fn report(&self, addr: SocketAddr) -> usize {
        let postbacks = [
            (&self.gb_a, "10", "pending"),
            (&self.gb_a, "10", "approved"),
            (&self.gb_b, "5.5", "approved"),
            (&self.rest, "3", "rejected"),
            (&self.summer, "7", "pending"),
        ];
        for (id, payout, status) in postbacks {
            let target =
                format!("/postback?click_id={id}&payout={payout}&currency=EUR&status={status}");
            assert_eq!(get(addr, &target, &[]).status, 200, "{target}");
        }
        postbacks.len()
    }
}

fn is_bot(row: &serde_json::Value) -> bool {
    row["bot"] == true || row["bot"] == 1 || row["bot"] == "1"
}

/// A number from a JSONEachRow value: ClickHouse quotes 64-bit integers.
pub fn num(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap_or(f64::NAN),
        v => v.as_f64().unwrap_or(f64::NAN),
    }
}

/// `traffic` rows summed over hours (a run may straddle one), keyed by
/// `campaign/flow/route/country`: clicks, bot clicks, and uniques if all in one hour.
pub fn traffic_by_group(rows: &[serde_json::Value]) -> Vec<(String, f64, f64, Option<f64>)> {
    let mut out: Vec<(String, f64, f64, Option<f64>)> = Vec::new();
    for r in rows {
        let key = ["campaign", "flow", "route", "country"]
            .map(|k| r[k].as_str().unwrap_or("?").to_string())
            .join("/");
        let (clicks, bots) = (num(&r["clicks"]), num(&r["clicks"]) * num(&r["bot_share"]));
        match out.iter_mut().find(|g| g.0 == key) {
            Some(g) => (g.1, g.2, g.3) = (g.1 + clicks, g.2 + bots, None),
            None => out.push((key, clicks, bots, Some(num(&r["uniques"])))),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What `traffic` must say for the known traffic: (group, clicks, bot clicks, uniques).
pub const TRAFFIC: [(&str, f64, f64, f64); 4] = [
    ("spring/bots/safe/US", 1.0, 1.0, 1.0),
    ("spring/rest/safe/US", 2.0, 0.0, 1.0),
    ("spring/uk/offer/GB", 4.0, 0.0, 2.0),
    ("summer/all/offer/SE", 4.0, 1.0, 1.0),
];

/// Checks `traffic` rows against `TRAFFIC`.
pub fn assert_traffic(rows: &[serde_json::Value]) {
    let got = traffic_by_group(rows);
    assert_eq!(got.len(), TRAFFIC.len(), "traffic groups: {rows:?}");
    for ((key, clicks, bots, uniques), want) in got.iter().zip(TRAFFIC) {
        assert_eq!(key, want.0, "{rows:?}");
        assert_eq!((*clicks, bots.round()), (want.1, want.2), "{key}: {rows:?}");
        if let Some(u) = uniques {
            assert_eq!(*u, want.3, "{key} uniques: {rows:?}");
        }
    }
}

/// A file of `config/clickhouse/` as shipped.
pub fn shipped(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/clickhouse")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// The `-- name: x` sections of a shipped queries file: (name, statement).
pub fn named_queries(file: &str) -> Vec<(String, String)> {
    shipped(file)
        .split("-- name: ")
        .skip(1)
        .map(|part| {
            let (name, body) = part.split_once('\n').unwrap();
            let sql: Vec<&str> = body.lines().filter(|l| !l.starts_with("--")).collect();
            (
                name.trim().to_string(),
                sql.join("\n").trim().trim_end_matches(';').to_string(),
            )
        })
        .collect()
}
