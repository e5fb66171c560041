-- flowgate click and conversion events in ClickHouse 18.16 (Debian's clickhouse-server): the
-- fallback. Current servers take flowgate.sql (typed, ordered for analysts, TTL, rollup).
--
--   flowgate events schema --fallback -c /etc/flowgate/flowgate.yaml | clickhouse-client --multiquery
--   events: { sink: http, http: { url: "http://127.0.0.1:8123/", clickhouse: { database: flowgate, table: clicks } } }
--
-- Delivery is at least once. ReplacingMergeTree ordered by (click_id, type) keeps one click
-- and one conversion per click_id: duplicates of either collapse when parts merge, and
-- queries that must not see duplicates before that read with FINAL:
--   SELECT count() FROM flowgate.clicks FINAL WHERE type = 'click'
-- A later conversion for the same click (pending -> approved) replaces the earlier one.
-- Not here: the kept query parameters (no Map type), a TTL (18.16 has none: drop old months
-- with ALTER TABLE flowgate.clicks DROP PARTITION 202401), and time or campaign pruning.

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
