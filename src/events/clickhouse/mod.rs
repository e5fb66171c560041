//! The HTTP sink when its collector is ClickHouse (`events.http.clickhouse`): the INSERT
//! flowgate writes itself, the typed rows it sends, the schema it prints, and erasure there.
//!
//! One row shape fits both schemas in `config/clickhouse/`: no nulls (empty strings and zeros
//! instead, which `LowCardinality` columns want), `ts` as RFC 3339 with milliseconds (read by
//! `date_time_input_format=best_effort` into `DateTime64(3)`, and into 18.16's `DateTime`),
//! and a `version` so the latest conversion status wins. 18.16 skips what it has no column for.

mod erase;
mod schema;

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ClickEvent, ConversionEvent, Event};
use crate::config::ClickHouseConfig;
pub use erase::{erase, Erased, Server, Whom};
pub use schema::{schema, Schema};

/// Settings sent with every insert: both schemas read the same rows.
const INSERT_SETTINGS: &str =
    "date_time_input_format=best_effort&input_format_skip_unknown_fields=1";

/// The insert URL for a server's base URL (`http://host:8123/`, query parameters kept).
pub fn insert_url(base: &str, ch: &ClickHouseConfig) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!(
        "{base}{sep}query=INSERT%20INTO%20{}.{}%20FORMAT%20JSONEachRow&{INSERT_SETTINGS}",
        ch.database.value, ch.table.value
    )
}

/// Turns events into the rows the schema takes. Keeps the ordering state of `version`.
#[derive(Debug, Default)]
pub struct RowEncoder {
    last_ms: u64,
    seq: u64,
}

/// What every row starts with.
#[derive(Serialize)]
struct Head<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    ts: &'a str,
    version: u64,
    click_id: &'a str,
}

/// A routing decision's columns: a click-through's whole row, and the start of a click's.
#[derive(Serialize)]
struct DecisionRow<'a> {
    #[serde(flatten)]
    head: Head<'a>,
    campaign: &'a str,
    flow: &'a str,
    route: &'a str,
    action: &'a str,
    status: u16,
}

impl<'a> DecisionRow<'a> {
    fn new(
        head: Head<'a>,
        campaign: &'a Option<String>,
        flow: &'a Option<String>,
        route: &'a str,
        action: &'a str,
        status: u16,
    ) -> DecisionRow<'a> {
        DecisionRow {
            head,
            campaign: or_empty(campaign),
            flow: or_empty(flow),
            route,
            action,
            status,
        }
    }
}

#[derive(Serialize)]
struct ClickRow<'a> {
    #[serde(flatten)]
    decision: DecisionRow<'a>,
    ip: &'a str,
    country: &'a str,
    asn: u32,
    as_org: &'a str,
    ip_lists: &'a [String],
    anonymous: &'a [String],
    bot: bool,
    device: &'a str,
    ua: &'a str,
    referer: &'a str,
    host: &'a str,
    path: &'a str,
    query: &'a BTreeMap<String, String>,
    lang: &'a str,
    upstream: &'a str,
    duration_ms: f64,
    rate_limited: bool,
}

/// A conversion, and a postback in the conversion columns it shares.
#[derive(Serialize)]
struct ConversionRow<'a> {
    #[serde(flatten)]
    head: Head<'a>,
    payout: f64,
    currency: &'a str,
    conversion_status: &'a str,
    campaign: &'a str,
    flow: &'a str,
    route: &'a str,
}

fn or_empty(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

impl RowEncoder {
    /// One JSONEachRow line, without its newline.
    pub fn encode(&mut self, event: &Event, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match event {
            Event::Click(c) => serde_json::to_writer(out, &self.click(c)),
            Event::Conversion(c) => serde_json::to_writer(out, &self.conversion(c)),
            // The table has no postback columns: the outcome goes in as the row's status.
            Event::Postback(p) => {
                let row = ConversionRow {
                    head: self.head("postback", &p.ts, &p.click_id),
                    payout: 0.0,
                    currency: "",
                    conversion_status: &p.outcome,
                    campaign: "",
                    flow: "",
                    route: "",
                };
                serde_json::to_writer(out, &row)
            }
            Event::LpClick(c) => {
                let head = self.head("lp_click", &c.ts, &c.click_id);
                let row =
                    DecisionRow::new(head, &c.campaign, &c.flow, &c.route, &c.action, c.status);
                serde_json::to_writer(out, &row)
            }
        }
    }

    fn head<'a>(&mut self, kind: &'static str, ts: &'a str, click_id: &'a str) -> Head<'a> {
        Head {
            kind,
            ts,
            version: self.version(ts),
            click_id,
        }
    }

    /// Event time in ms x 1000, plus the event's place among those of the same ms here, so
    /// two postbacks in one millisecond still replace each other in the order they came.
    fn version(&mut self, ts: &str) -> u64 {
        let ms = crate::time::parse_rfc3339(ts).unwrap_or_else(crate::time::now_ms);
        if ms == self.last_ms {
            self.seq = (self.seq + 1).min(999);
        } else {
            (self.last_ms, self.seq) = (ms, 0);
        }
        ms * 1000 + self.seq
    }

    fn click<'a>(&mut self, c: &'a ClickEvent) -> ClickRow<'a> {
        let head = self.head("click", &c.ts, &c.click_id);
        let s = or_empty;
        ClickRow {
            decision: DecisionRow::new(head, &c.campaign, &c.flow, &c.route, &c.action, c.status),
            ip: s(&c.ip),
            country: s(&c.country),
            asn: c.asn.unwrap_or(0),
            as_org: s(&c.as_org),
            ip_lists: &c.ip_lists,
            anonymous: &c.anonymous,
            bot: c.bot,
            device: &c.device,
            ua: s(&c.ua),
            referer: s(&c.referer),
            host: &c.host,
            path: &c.path,
            query: &c.query,
            lang: s(&c.lang),
            upstream: s(&c.upstream),
            duration_ms: c.duration_ms,
            rate_limited: c.rate_limited,
        }
    }

    fn conversion<'a>(&mut self, c: &'a ConversionEvent) -> ConversionRow<'a> {
        ConversionRow {
            head: self.head("conversion", &c.ts, &c.click_id),
            payout: c.payout.unwrap_or(0.0),
            currency: or_empty(&c.currency),
            conversion_status: or_empty(&c.conversion_status),
            campaign: or_empty(&c.campaign),
            flow: or_empty(&c.flow),
            route: or_empty(&c.route),
        }
    }
}

/// A string literal for ClickHouse SQL.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `db`.`table`, quoted: table names come back from the server as they are.
fn qualified(db: &str, table: &str) -> String {
    let q = |s: &str| format!("`{}`", s.replace('\\', "\\\\").replace('`', "\\`"));
    format!("{}.{}", q(db), q(table))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::At;

    fn conversion(ts: &str, status: &str) -> Event {
        Event::Conversion(ConversionEvent {
            ts: ts.into(),
            click_id: "c1".into(),
            payout: Some(12.5),
            conversion_status: Some(status.into()),
            ..ConversionEvent::default()
        })
    }

    #[test]
    fn rows_have_no_nulls_and_a_version_that_orders_events_of_one_millisecond() {
        let mut enc = RowEncoder::default();
        let mut lines = Vec::new();
        for status in ["pending", "approved"] {
            let mut out = Vec::new();
            let event = conversion("2026-05-01T12:00:00.123Z", status);
            enc.encode(&event, &mut out).unwrap();
            lines.push(serde_json::from_slice::<serde_json::Value>(&out).unwrap());
        }
        assert_eq!(lines[0]["version"], 1_777_636_800_123_000u64);
        assert_eq!(lines[1]["version"], 1_777_636_800_123_001u64);
        assert_eq!(lines[1]["currency"], "");
        assert_eq!(lines[1]["type"], "conversion");
        assert!(!lines.iter().any(|l| l.to_string().contains("null")));
    }

    #[test]
    fn each_event_gives_its_row_with_the_columns_in_their_order() {
        use crate::events::{LpClickEvent, PostbackEvent};
        let ts = "2026-05-01T12:00:00.123Z";
        let click = ClickEvent {
            ts: ts.into(),
            click_id: "c1".into(),
            campaign: Some("spring".into()),
            flow: None,
            route: "offer".into(),
            action: "redirect".into(),
            status: 302,
            ip: Some("203.0.113.0".into()),
            country: Some("GB".into()),
            asn: Some(64500),
            as_org: None,
            ip_lists: vec!["datacenter".into()],
            anonymous: vec![],
            bot: false,
            device: "desktop".into(),
            ua: Some("UA".into()),
            referer: None,
            host: "promo.example.com".into(),
            path: "/lp".into(),
            query: BTreeMap::from([("utm_source".into(), "push".into())]),
            lang: Some("en".into()),
            upstream: None,
            duration_ms: 1.5,
            rate_limited: true,
            unique: Some(true),
            source: Some("pushnet".into()),
            params: BTreeMap::new(),
            ja4: None,
            crawler: None,
            crawler_verified: None,
        };
        let lp_click = LpClickEvent {
            ts: ts.into(),
            click_id: "c1".into(),
            campaign: Some("spring".into()),
            flow: Some("fresh".into()),
            route: "offer".into(),
            action: "redirect".into(),
            status: 302,
            unknown_click: false,
        };
        let conversion = ConversionEvent {
            ts: ts.into(),
            click_id: "c1".into(),
            payout: Some(12.5),
            currency: Some("USD".into()),
            conversion_status: Some("approved".into()),
            campaign: Some("spring".into()),
            ..ConversionEvent::default()
        };
        let postback = PostbackEvent {
            ts: ts.into(),
            click_id: "c1".into(),
            conversion_id: "v1".into(),
            source: "pushnet".into(),
            conversion_status: Some("approved".into()),
            outcome: "delivered".into(),
            error: None,
        };
        let mut enc = RowEncoder::default();
        let mut line = |e: Event| {
            let mut out = Vec::new();
            enc.encode(&e, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let head = |kind: &str, n: u64| {
            format!(
                r#"{{"type":"{kind}","ts":"{ts}","version":177763680012300{n},"click_id":"c1","#
            )
        };
        assert_eq!(
            line(Event::Click(click)),
            head("click", 0)
                + r#""campaign":"spring","flow":"","route":"offer","action":"redirect","status":302,"#
                + r#""ip":"203.0.113.0","country":"GB","asn":64500,"as_org":"","ip_lists":["datacenter"],"#
                + r#""anonymous":[],"bot":false,"device":"desktop","ua":"UA","referer":"","#
                + r#""host":"promo.example.com","path":"/lp","query":{"utm_source":"push"},"lang":"en","#
                + r#""upstream":"","duration_ms":1.5,"rate_limited":true}"#
        );
        assert_eq!(
            line(Event::LpClick(lp_click)),
            head("lp_click", 1)
                + r#""campaign":"spring","flow":"fresh","route":"offer","action":"redirect","status":302}"#
        );
        assert_eq!(
            line(Event::Conversion(conversion)),
            head("conversion", 2)
                + r#""payout":12.5,"currency":"USD","conversion_status":"approved","#
                + r#""campaign":"spring","flow":"","route":""}"#
        );
        assert_eq!(
            line(Event::Postback(postback)),
            head("postback", 3)
                + r#""payout":0.0,"currency":"","conversion_status":"delivered","#
                + r#""campaign":"","flow":"","route":""}"#
        );
    }

    #[test]
    fn the_insert_names_the_configured_table_and_keeps_the_url_parameters() {
        let ch = ClickHouseConfig {
            database: At::new("analytics".into()),
            table: At::new("fg_events".into()),
        };
        let url = insert_url("http://127.0.0.1:8123/?database=x", &ch);
        assert!(
            url.starts_with("http://127.0.0.1:8123/?database=x&query=INSERT%20INTO%20analytics.fg_events%20FORMAT%20JSONEachRow&"),
            "{url}"
        );
    }

    #[test]
    fn quoted_values_cannot_end_their_literal() {
        assert_eq!(quote(r"a'b\"), r"'a\'b\\'");
        assert_eq!(qualified("db", "t`x"), r"`db`.`t\`x`");
    }
}
