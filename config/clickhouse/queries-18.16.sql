-- The daily queries of queries.sql, for the 18.16 fallback schema (flowgate-18.16.sql):
-- every read needs FINAL, and there is no source (the query parameters are not stored).
-- tests/clickhouse.rs runs them on Debian's clickhouse-server and checks the numbers.

-- name: traffic
SELECT toStartOfHour(ts) AS hour, ifNull(campaign, '') AS campaign, ifNull(flow, '') AS flow,
       route, ifNull(country, '') AS country,
       count() AS clicks,
       uniq(ip) AS uniques,
       round(sum(bot) / count(), 4) AS bot_share
FROM flowgate.clicks FINAL
WHERE type = 'click' AND ts >= toStartOfHour(now() - INTERVAL 24 HOUR)
GROUP BY hour, campaign, flow, route, country
ORDER BY hour, campaign, flow, route, country;

-- name: conversions
SELECT campaign, flow,
       count() AS clicks,
       sum(approved) AS conversions,
       round(conversions / clicks, 4) AS conversion_rate,
       sum(approved * payout) AS revenue,
       sum(converted * (status = 'pending')) AS pending
FROM
(
    SELECT ifNull(campaign, '') AS campaign, ifNull(flow, '') AS flow, click_id
    FROM flowgate.clicks FINAL
    WHERE type = 'click' AND ts >= now() - INTERVAL 7 DAY
) AS c
ANY LEFT JOIN
(
    SELECT click_id, toUInt8(1) AS converted, ifNull(conversion_status, '') AS status,
           ifNull(payout, 0) AS payout, toUInt8(status IN ('approved', '')) AS approved
    FROM flowgate.clicks FINAL
    WHERE type = 'conversion'
) AS v USING click_id
GROUP BY campaign, flow
ORDER BY campaign, flow;
