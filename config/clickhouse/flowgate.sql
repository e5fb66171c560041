-- flowgate click and conversion events in current ClickHouse (23.3 and later; tested with the
-- engine of the `chdb` package). Debian's 18.16 takes flowgate-18.16.sql instead.
--
-- Print this schema with your retention and names filled in, and load it:
--   flowgate events schema -c /etc/flowgate/flowgate.yaml | clickhouse-client --multiquery
-- then point the HTTP sink at the server; flowgate writes the INSERT into `events` itself:
--   events: { sink: http, http: { url: "http://127.0.0.1:8123/", clickhouse: { database: flowgate, table: events } } }
--
-- `events` keeps nothing (Null engine): materialized views route each row it takes to
-- `clicks` or `conversions`, and every click into the hourly rollup `clicks_hourly`.
-- Delivery is at least once: a click sent twice collapses when parts merge (ReplacingMergeTree
-- keyed by click_id inside its campaign and hour); for conversions the row with the highest
-- `version` (event time in ms x 1000 + order within the ms) wins, so `approved` replaces
-- `pending`. The TTL (the click retention, events.file.retain) deletes rows as parts merge.

CREATE DATABASE IF NOT EXISTS flowgate;

CREATE TABLE IF NOT EXISTS flowgate.events
(
    type              LowCardinality(String),
    ts                DateTime64(3, 'UTC'),
    version           UInt64,
    click_id          String,
    campaign          LowCardinality(String),
    flow              LowCardinality(String),
    route             LowCardinality(String),
    action            LowCardinality(String),
    status            UInt16,
    ip                String,
    country           LowCardinality(String),
    asn               UInt32,
    as_org            LowCardinality(String),
    ip_lists          Array(LowCardinality(String)),
    anonymous         Array(LowCardinality(String)),
    bot               Bool,
    device            LowCardinality(String),
    ua                String,
    referer           String,
    host              LowCardinality(String),
    path              String,
    query             Map(LowCardinality(String), String),
    lang              LowCardinality(String),
    upstream          LowCardinality(String),
    duration_ms       Float32,
    rate_limited      Bool,
    source            LowCardinality(String),
    payout            Decimal(18, 4),
    currency          LowCardinality(String),
    conversion_status LowCardinality(String)
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS flowgate.clicks
(
    ts           DateTime64(3, 'UTC'),
    click_id     String,
    campaign     LowCardinality(String),
    flow         LowCardinality(String),
    route        LowCardinality(String),
    action       LowCardinality(String),
    status       UInt16,
    ip           String,
    country      LowCardinality(String),
    asn          UInt32,
    as_org       LowCardinality(String),
    ip_lists     Array(LowCardinality(String)),
    anonymous    Array(LowCardinality(String)),
    bot          Bool,
    device       LowCardinality(String),
    ua           String CODEC(ZSTD(3)),
    referer      String CODEC(ZSTD(3)),
    host         LowCardinality(String),
    path         String CODEC(ZSTD(3)),
    query        Map(LowCardinality(String), String),
    lang         LowCardinality(String),
    upstream     LowCardinality(String),
    duration_ms  Float32,
    rate_limited Bool,
    -- The traffic source: the event's own once rules declare sources, else utm_source.
    source       LowCardinality(String),
    INDEX click_id_bloom click_id TYPE bloom_filter GRANULARITY 4,
    INDEX ip_bloom ip TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (campaign, toStartOfHour(ts), flow, route, click_id)
TTL toDateTime(ts) + INTERVAL 90 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS flowgate.clicks_mv TO flowgate.clicks AS
SELECT ts, click_id, campaign, flow, route, action, status, ip, country, asn, as_org,
       ip_lists, anonymous, bot, device, ua, referer, host, path, query, lang, upstream,
       duration_ms, rate_limited, if(source != '', source, query['utm_source']) AS source
FROM flowgate.events
WHERE type = 'click';

CREATE TABLE IF NOT EXISTS flowgate.conversions
(
    ts                DateTime64(3, 'UTC'),
    version           UInt64,
    click_id          String,
    payout            Decimal(18, 4),
    currency          LowCardinality(String),
    conversion_status LowCardinality(String)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY click_id
TTL toDateTime(ts) + INTERVAL 90 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS flowgate.conversions_mv TO flowgate.conversions AS
SELECT ts, version, click_id, payout, currency, conversion_status
FROM flowgate.events
WHERE type = 'conversion';

-- Counts per hour and dimension; `visitors` is a HyperLogLog sketch of the stored `ip`
-- (full, truncated or pseudonym, as privacy.ip allows; none with ip: none). It counts
-- every row delivered, so a batch sent twice counts twice here (rare: a retry after a
-- timeout the server had in fact answered); the clicks table, read with FINAL, is exact.
CREATE TABLE IF NOT EXISTS flowgate.clicks_hourly
(
    hour     DateTime('UTC'),
    campaign LowCardinality(String),
    flow     LowCardinality(String),
    route    LowCardinality(String),
    country  LowCardinality(String),
    source   LowCardinality(String),
    clicks   SimpleAggregateFunction(sum, UInt64),
    bots     SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniq, Nullable(String))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (campaign, hour, flow, route, country, source)
TTL hour + INTERVAL 90 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS flowgate.clicks_hourly_mv TO flowgate.clicks_hourly AS
SELECT toStartOfHour(ts) AS hour, campaign, flow, route, country, source,
       count() AS clicks, countIf(bot) AS bots, uniqState(nullIf(ip, '')) AS visitors
FROM flowgate.clicks
GROUP BY hour, campaign, flow, route, country, source;
