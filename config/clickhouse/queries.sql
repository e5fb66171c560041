-- The queries an operator runs every day, on the schema of flowgate.sql. Each one is
-- preceded by its name; tests/clickhouse_current.rs runs every one of them on a known set of
-- events and checks the numbers. Change the time windows to taste.
--
-- A conversion counts when its latest status is `approved` or empty (the tracker sent
-- none); `pending` ones are shown apart; any other status (rejected, ...) counts nothing.

-- name: traffic
-- Clicks, unique visitors and bot share per campaign, flow, route and country per hour, last
-- 24 hours, from the hourly rollup (uniques as the stored ip allows: see privacy.ip).
SELECT hour, campaign, flow, route, country,
       sum(clicks) AS clicks,
       uniqMerge(visitors) AS uniques,
       round(sum(bots) / clicks, 4) AS bot_share
FROM flowgate.clicks_hourly
WHERE hour >= toStartOfHour(now() - INTERVAL 24 HOUR)
GROUP BY hour, campaign, flow, route, country
ORDER BY hour, campaign, flow, route, country;

-- name: conversions
-- Clicks, conversions, conversion rate, revenue and pending conversions by campaign, flow and
-- source, for the clicks of the last 7 days. Clicks are counted in the rollup; conversions
-- carry no campaign or flow, so they are joined to their click on click_id, their latest
-- status picked by version.
SELECT campaign, flow, source, clicks, conversions,
       round(conversions / clicks, 4) AS conversion_rate, revenue, pending
FROM
(
    SELECT campaign, flow, source, sum(clicks) AS clicks
    FROM flowgate.clicks_hourly
    WHERE hour >= toStartOfHour(now() - INTERVAL 7 DAY)
    GROUP BY campaign, flow, source
) AS a
LEFT JOIN
(
    SELECT c.campaign AS campaign, c.flow AS flow, c.source AS source,
           countIf(v.status IN ('approved', '')) AS conversions,
           sumIf(v.payout, v.status IN ('approved', '')) AS revenue,
           countIf(v.status = 'pending') AS pending
    FROM flowgate.clicks AS c
    INNER JOIN
    (
        SELECT click_id,
               argMax(conversion_status, version) AS status,
               argMax(payout, version) AS payout
        FROM flowgate.conversions
        GROUP BY click_id
    ) AS v ON v.click_id = c.click_id
    WHERE c.ts >= toStartOfHour(now() - INTERVAL 7 DAY)
    GROUP BY campaign, flow, source
) AS b USING (campaign, flow, source)
ORDER BY campaign, flow, source;
