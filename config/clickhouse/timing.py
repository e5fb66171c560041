"""Query timings behind the table in README.md (ClickHouse / query timings): the documented
daily queries on generated events, the current schema (flowgate.sql, queries.sql) against the
18.16 one read with FINAL (flowgate-18.16.sql, queries-18.16.sql), both on the engine of the
`chdb` package, in one process, from the same rows.

    pip install chdb
    python3 config/clickhouse/timing.py [CLICKS [FOLDER]]      (CLICKS: 5000000)

Clicks spread over the last 7 days: 20 campaigns, each with 4 flows (bots to `automation` ->
safe; `target` split offer/shop 80/20, `retarget` -> offer, `default` -> safe) and 2 of 5
sources; 30 countries, skewed (the first few take most); 15% bots. One click in 20 converts,
a third of those first pending, then approved. A second argument keeps the generated data in
that folder, and a later run with it only times the queries. Each
query runs once to warm up, then 5 times; the table shows the median. Not part of the tests.
"""

import os
import statistics
import sys
import time

from chdb import session

HERE = os.path.dirname(os.path.abspath(__file__))
CLICKS = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000_000
FOLDER = sys.argv[2] if len(sys.argv) > 2 else None

GENERATE = f"""
INSERT INTO gen.events (type, ts, version, click_id, campaign, bot, flow, route, action, status,
    ip, country, asn, as_org, ip_lists, anonymous, device, ua, referer, host, path, query, lang,
    upstream, duration_ms, rate_limited, source, payout, currency, conversion_status)
SELECT
    'click' AS type,
    now64(3) - toIntervalMillisecond(cityHash64(number, 1) % (7 * 86400000)) AS ts,
    toUInt64(toUnixTimestamp64Milli(ts)) * 1000 AS version,
    hex(MD5(toString(number))) AS click_id,
    concat('campaign', toString(number % 20)) AS campaign,
    cityHash64(number, 7) % 100 < 15 AS bot,
    if(bot, 'automation', ['target', 'retarget', 'default'][1 + cityHash64(number, 2) % 3]) AS flow,
    multiIf(flow = 'target', if(cityHash64(number, 3) % 5 = 0, 'shop', 'offer'),
            flow = 'retarget', 'offer', 'safe') AS route,
    'proxy' AS action, 200 AS status,
    IPv4NumToString(toUInt32(cityHash64(number, 4) % 400000 + 16777216)) AS ip,
    ['US','GB','DE','FR','CA','AU','BR','IN','JP','NL','SE','ES','IT','PL','MX',
     'TR','ID','PH','VN','TH','KR','AR','CO','ZA','NG','EG','SA','AE','UA','RO']
        [1 + toUInt32(pow((cityHash64(number, 5) % 1000) / 1000, 3) * 30)] AS country,
    toUInt32(cityHash64(number, 6) % 5000) AS asn, 'Example AS' AS as_org,
    CAST([], 'Array(String)') AS ip_lists, CAST([], 'Array(String)') AS anonymous,
    ['desktop', 'mobile', 'tablet'][1 + cityHash64(number, 8) % 3] AS device,
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36' AS ua,
    '' AS referer, 'promo.example.com' AS host, '/lp' AS path,
    map('utm_source', ['fb', 'gg', 'tt', 'push', 'native'][1 + (number % 20 + cityHash64(number, 9) % 2) % 5],
        'sub1', toString(number % 1000)) AS query,
    'en' AS lang, '10.0.0.1:8080' AS upstream,
    (cityHash64(number, 10) % 5000) / 100 AS duration_ms,
    false AS rate_limited, '' AS source,
    toDecimal64(0, 4) AS payout, '' AS currency, '' AS conversion_status
FROM numbers({CLICKS})
"""

CONVERT = """
INSERT INTO gen.events (type, ts, version, click_id, payout, currency, conversion_status)
SELECT 'conversion', ts + toIntervalMinute(10 + k * 60), version + 1 + k, click_id,
       toDecimal64(5 + cityHash64(click_id) % 20, 4), 'EUR',
       if(k = 0 AND cityHash64(click_id, 1) % 3 = 0, 'pending', 'approved')
FROM gen.events ARRAY JOIN [0, 1] AS k
WHERE type = 'click' AND cityHash64(click_id, 2) % 20 = 0
  AND (k = 1 OR cityHash64(click_id, 1) % 3 = 0)
"""

COLUMNS = """type, ts, version, click_id, campaign, flow, route, action, status, ip, country, asn,
    as_org, ip_lists, anonymous, bot, device, ua, referer, host, path, query, lang, upstream,
    duration_ms, rate_limited, source, payout, currency, conversion_status"""

OLD_COLUMNS = """type, ts, click_id, campaign, flow, route, action, status, ip, country, asn, as_org,
    ip_lists, anonymous, bot, device, ua, referer, host, path, lang, upstream, duration_ms,
    payout, currency, conversion_status"""


def statements(text):
    code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


def named(text):
    out = []
    for part in text.split("-- name: ")[1:]:
        name, body = part.split("\n", 1)
        out.append((name.strip(), statements(body)[0]))
    return out


def read(name):
    with open(os.path.join(HERE, name)) as f:
        return f.read()


def timed(s, sql, runs=5):
    s.query(sql, "Null")
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.query(sql, "Null")
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    s = session.Session(FOLDER) if FOLDER else session.Session()
    if s.query("EXISTS TABLE gen.events", "TSV").bytes().decode().strip() != "1":
        generate(s)
    rows = s.query("SELECT count() FROM gen.events", "TSV").bytes().decode().strip()
    version = s.query("SELECT version()", "TSV").bytes().decode().strip()
    print(f"{rows} events (ClickHouse {version} in chdb)")
    current = dict(named(read("queries.sql")))
    old = dict(named(read("queries-18.16.sql").replace("flowgate.", "old.")))
    print()
    print("| query | 18.16 schema, with FINAL | current schema |")
    print("|---|---|---|")
    for name in current:
        a, b = timed(s, old[name]), timed(s, current[name])
        print(f"| {name} | {a:.3f} s | {b:.3f} s ({a / b:.1f}x) |")
    s.close()


def generate(s):
    t = time.perf_counter()
    for stmt in statements(read("flowgate.sql")) + statements(read("flowgate-18.16.sql").replace("flowgate.", "old.").replace("EXISTS flowgate", "EXISTS old")):
        s.query(stmt)
    s.query("CREATE DATABASE gen")
    s.query(f"CREATE TABLE gen.events AS flowgate.events ENGINE = MergeTree ORDER BY tuple()")
    for what, sql in [
        ("generate clicks", GENERATE),
        ("generate conversions", CONVERT),
        ("insert, current schema", f"INSERT INTO flowgate.events SELECT {COLUMNS} FROM gen.events"),
        ("insert, 18.16 schema", f"INSERT INTO old.clicks ({OLD_COLUMNS}) SELECT {OLD_COLUMNS} FROM gen.events"),
    ]:
        step = time.perf_counter()
        s.query(sql)
        print(f"{what}: {time.perf_counter() - step:.1f} s", file=sys.stderr)
    print(f"generated and inserted in {time.perf_counter() - t:.0f} s", file=sys.stderr)


main()
