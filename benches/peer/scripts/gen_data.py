#!/usr/bin/env python3
"""Generate the benchmark's filter lists and request mix (deterministic, seed 42).

Inputs : the @ip-location-db/asn CSVs (real IP->ASN ranges).
Outputs (in OUTDIR):
  cidr_<N>.geo     nginx `geo` include: "<cidr> <label>;" for N in 50000, 500000
  cidr_<N>.csv     same list as "cidr,label" (make_inputs.py turns the 50k one into flowgate's list)
  (the bench uses the 50k list; the 500k one is still drawn because the request mix below comes
   from the same random stream: dropping it would change reqpool.tsv and the decision counts)
  asn_hosting.map  nginx `map $geo_asn` include: hosting/cloud ASNs -> 1
  reqpool.tsv      request mix for wrk: "ip<TAB>user-agent<TAB>path" per line
  mix_stats.txt    composition of reqpool

CIDR list composition (all labels "dc" or "tor"):
  * every IPv4+IPv6 range of ~50 real hosting/cloud ASNs (AWS, GCP, Azure, OVH,
    Hetzner, DO, Vultr, Oracle, Cloudflare, M247, Datacamp, ...) converted to
    CIDRs (~30k entries, real prefix-length distribution);
  * 1,500 "tor" /32s (synthetic: random hosts inside ranges of ASNs that really
    host many Tor exits; no live Tor list is reachable offline);
  * padding up to N with synthetic prefixes (/20../32, weighted to /32 and /24
    like abuse/blocklists) drawn inside random real allocated ranges.
"""
import bisect
import csv
import ipaddress
import os
import random
import sys

HOSTING_ASNS = [
    16509, 14618, 8987,            # Amazon
    15169, 396982, 19527,          # Google
    8075, 8068,                    # Microsoft
    14061,                         # DigitalOcean
    16276,                         # OVH
    24940,                         # Hetzner
    63949,                         # Linode/Akamai
    20473,                         # Vultr/Choopa
    51167, 40021,                  # Contabo
    45102, 37963,                  # Alibaba
    132203, 45090,                 # Tencent
    31898,                         # Oracle
    13335,                         # Cloudflare
    60781, 28753, 30633,           # Leaseweb
    12876,                         # Scaleway
    9009,                          # M247
    36352,                         # ColoCrossing
    46606, 26496,                  # Unified Layer, GoDaddy
    19318,                         # Interserver
    62240,                         # Clouvider
    197540,                        # netcup
    53667,                         # FranTech/BuyVM
    8100,                          # QuadraNet
    29802,                         # HVC
    32613,                         # iWeb
    136907, 55990,                 # Huawei Cloud
    21859,                         # Zenlayer
    396356,                        # Latitude.sh
    212238, 60068,                 # Datacamp/CDN77
    202425,                        # IP Volume
    135377,                        # UCloud
    7506,                          # GMO
    20454, 54290, 25820, 35913, 62567,  # SSD Nodes, Hostwinds, IT7, DediPath, DO(2)
]
TOR_HEAVY_ASNS = [60729, 53667, 208323, 4224, 24940, 16276, 197540, 51167, 200651]

BROWSER_UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.102 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; M2101K6G) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 OPR/85.0.0.0",
    "Mozilla/5.0 (Linux; Android 13; V2111) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.71 Mobile Safari/537.36 VivoBrowser/13.0.0.0",
    "Mozilla/5.0 (Linux; Android 14; 23106RN0DA Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.107 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/486.0.0.55.70;]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/22A3354 Instagram 355.1.0.44.103 (iPhone14,5; iOS 18_0; en_US; en; scale=3.00; 1170x2532; 658196245)",
    "Mozilla/5.0 (Linux; Android 13; TECNO KI5q) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.39 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 YaBrowser/24.10.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; U; Android 11; en-US; RMX3201 Build/RP1A.201005.001) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/123.0.6312.80 UCBrowser/13.7.0.1315 Mobile Safari/537.36",
]
BOT_UAS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/131.0.6778.69 Safari/537.36",
    "AdsBot-Google (+http://www.google.com/adsbot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
    "python-requests/2.32.3",
    "curl/8.5.0",
    "Wget/1.21.4",
    "Go-http-client/2.0",
    "okhttp/4.12.0",
    "Java/17.0.9",
    "Scrapy/2.11.2 (+https://scrapy.org)",
    "axios/1.7.7",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "Mozilla/5.0 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
    "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
    "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
    "",
]
OFFER_COUNTRIES = "US CA GB DE FR IT ES NL SE NO DK FI AU NZ JP BR MX PL AT CH BE IE".split()


def load_ranges(path):
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.reader(f):
            out.append((r[0], r[1], int(r[2])))
    return out


def summarize(a, b):
    return ipaddress.summarize_address_range(ipaddress.ip_address(a), ipaddress.ip_address(b))


def rand_ip_in(rng, a, b):
    lo, hi = int(ipaddress.ip_address(a)), int(ipaddress.ip_address(b))
    v = rng.randint(lo, hi)
    return ipaddress.ip_address(v) if ipaddress.ip_address(a).version == 4 else ipaddress.IPv6Address(v)


def main():
    asn_dir, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    rng = random.Random(42)
    v4 = load_ranges(os.path.join(asn_dir, "asn-ipv4.csv"))
    v6 = load_ranges(os.path.join(asn_dir, "asn-ipv6.csv"))
    hs = set(HOSTING_ASNS)

    # ---- real datacenter CIDRs
    dc = {}  # cidr(str) -> label
    dc_ranges = []
    for a, b, asn in v4 + v6:
        if asn in hs:
            dc_ranges.append((a, b))
            for net in summarize(a, b):
                dc[str(net)] = "dc"
    n_real = len(dc)

    # ---- tor-like /32s
    tor_ranges = [(a, b) for a, b, asn in v4 if asn in TOR_HEAVY_ASNS]
    tor_ips = []
    while len(tor_ips) < 1500:
        a, b = rng.choice(tor_ranges)
        ip = str(rand_ip_in(rng, a, b))
        key = ip + "/32"
        if key not in dc:
            dc[key] = "tor"
            tor_ips.append(ip)

    # ---- synthetic padding (inside real allocated IPv4 space)
    plens = [32] * 45 + [24] * 25 + [29, 28, 27, 26, 25] * 3 + [23, 22, 21, 20] * 2 + [30, 31] * 2
    base = dict(dc)
    lists = {}
    for target in (50000, 500000):
        cur = dict(base)
        while len(cur) < target:
            a, b, _asn = rng.choice(v4)
            ip = int(rand_ip_in(rng, a, b))
            pl = rng.choice(plens)
            net = ipaddress.IPv4Network((ip >> (32 - pl) << (32 - pl), pl))
            key = str(net)
            if key not in cur:
                cur[key] = "dc"
        lists[target] = cur
        base_keys = list(cur.items())
        rng.shuffle(base_keys)
        with open(os.path.join(outdir, f"cidr_{target}.geo"), "w") as g, \
                open(os.path.join(outdir, f"cidr_{target}.csv"), "w") as c:
            for k, v in base_keys:
                g.write(f"{k} {v};\n")
                c.write(f"{k},{v}\n")

    with open(os.path.join(outdir, "asn_hosting.map"), "w") as f:
        for asn in sorted(hs):
            f.write(f"{asn} 1;\n")

    # ---- request mix
    res_v4 = [(a, b) for a, b, asn in v4 if asn not in hs]
    res_v6 = [(a, b) for a, b, asn in v6 if asn not in hs]
    dc_v4 = [(a, b) for a, b in dc_ranges if ":" not in a]
    kinds = (["res4"] * 60 + ["res6"] * 7 + ["dc"] * 15 + ["tor"] * 3 + ["rand4"] * 15)
    stats = {}
    n = 20000
    with open(os.path.join(outdir, "reqpool.tsv"), "w") as f:
        for i in range(n):
            k = rng.choice(kinds)
            if k == "res4":
                ip = rand_ip_in(rng, *rng.choice(res_v4))
            elif k == "res6":
                ip = rand_ip_in(rng, *rng.choice(res_v6))
            elif k == "dc":
                ip = rand_ip_in(rng, *rng.choice(dc_v4))
            elif k == "tor":
                ip = rng.choice(tor_ips)
            else:
                ip = ipaddress.IPv4Address(rng.randint(0x01000000, 0xDFFFFFFF))
            # bots are more likely from datacenters
            p_bot = 0.6 if k in ("dc", "tor") else 0.12
            is_bot = rng.random() < p_bot
            ua = rng.choice(BOT_UAS) if is_bot else rng.choice(BROWSER_UAS)
            camp = rng.randint(1, 40)
            path = (f"/lp/c{camp}?cid={rng.getrandbits(64):016x}&sub1=s{rng.randint(1, 500)}"
                    f"&src=fb&utm_campaign=cmp{camp}")
            f.write(f"{ip}\t{ua}\t{path}\n")
            stats[(k, "bot" if is_bot else "browser")] = stats.get((k, "bot" if is_bot else "browser"), 0) + 1

    with open(os.path.join(outdir, "mix_stats.txt"), "w") as f:
        f.write(f"real hosting-ASN CIDRs (v4+v6): {n_real}\n")
        f.write("tor /32s: 1500\n")
        for t, l in lists.items():
            v6c = sum(1 for k in l if ":" in k)
            f.write(f"cidr list {t}: {len(l)} entries ({v6c} IPv6)\n")
        f.write(f"hosting ASNs: {len(hs)}\n")
        f.write(f"reqpool: {n} requests\n")
        for (k, b), c in sorted(stats.items()):
            f.write(f"  {k:6s} {b:8s} {c}\n")
    print(open(os.path.join(outdir, "mix_stats.txt")).read(), end="")


if __name__ == "__main__":
    main()
