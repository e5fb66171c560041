-- flowgate click and conversion events in ClickHouse.
-- Runs on Debian's clickhouse-server (18.16) and on current releases.
--
-- The HTTP sink inserts with
--   events:
--     sink: http
--     http:
--       url: "http://127.0.0.1:8123/?query=INSERT INTO flowgate.clicks FORMAT JSONEachRow&date_time_input_format=best_effort&input_format_skip_unknown_fields=1"
--
-- Delivery is at least once. ReplacingMergeTree ordered by (click_id, type) keeps one click
-- and one conversion per click_id: duplicates of either collapse when parts merge, and
-- queries that must not see duplicates before that read with FINAL:
--   SELECT count() FROM flowgate.clicks FINAL WHERE type = 'click'
-- A later conversion for the same click (pending -> approved) replaces the earlier one.
-- The `query` object of events (kept utm_*/gclid/... parameters) is not stored here.

CREATE DATABASE IF NOT EXISTS flowgate;

CREATE TABLE IF NOT EXISTS flowgate.clicks
(
    type              String,
    ts                DateTime,
    click_id          String,
    campaign          Nullable(String),
    flow              Nullable(String),
    route             String,
    action            String,
    status            UInt16,
    ip                Nullable(String),
    country           Nullable(String),
    asn               Nullable(UInt32),
    as_org            Nullable(String),
    ip_lists          Array(String),
    anonymous         Array(String),
    bot               UInt8,
    device            String,
    ua                Nullable(String),
    referer           Nullable(String),
    host              String,
    path              String,
    lang              Nullable(String),
    upstream          Nullable(String),
    duration_ms       Float64,
    payout            Nullable(Float64),
    currency          Nullable(String),
    conversion_status Nullable(String)
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (click_id, type);
