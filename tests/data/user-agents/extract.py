"""Makes the labelled corpora in this folder from the registry packages named in README.md.

Matomo's fixtures (PyPI device_detector 6.5.1, tests/fixtures/upstream/*.yml) are split by
file: the odd-numbered files are for tuning, the even-numbered and unnumbered ones for
measuring; each half is thinned to every n-th entry to keep the repo small. One line per user
agent: `label<TAB>user agent`, label one of bot, desktop, mobile, tablet, other (a human
device that is none of those: TV, console, wearable, car, ...).

    python3 extract.py FIXTURES_DIR CRAWLER_USER_AGENTS_JSON
"""
import glob, json, os, re, sys
import yaml

fixtures, cua = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
DEVICE = {"desktop": "desktop", "smartphone": "mobile", "phablet": "mobile",
          "feature phone": "mobile", "tablet": "tablet"}
HUMAN_CLIENTS = {"browser", "mobile app"}


def clean(ua):
    return ua.replace("\t", " ").replace("\r", " ").replace("\n", " ").strip()


halves = {"tune": [], "measure": []}
bots = []
for f in sorted(glob.glob(os.path.join(fixtures, "*.yml"))):
    name = os.path.basename(f)
    if name.startswith("clienthints"):
        continue  # their labels lean on headers the user agent alone does not carry
    entries = yaml.load(open(f), Loader=yaml.CSafeLoader)
    if name == "bots.yml":
        bots += [("bot", clean(e["user_agent"])) for e in entries]
        continue
    num = re.search(r"-(\d+)\.yml$", name)
    half = "tune" if num and int(num.group(1)) % 2 == 1 else "measure"
    for e in entries:
        client = e.get("client") if isinstance(e.get("client"), dict) else {}
        if client.get("type") not in HUMAN_CLIENTS:
            continue
        dtype = (e.get("device") or {}).get("type", "")
        if not dtype:
            continue
        halves[half].append((DEVICE.get(dtype, "other"), clean(e["user_agent"])))


def write(path, rows, cap):
    rows = sorted(set(rows), key=lambda r: (r[1], r[0]))
    step = max(1, -(-len(rows) // cap))
    rows = rows[::step]
    with open(os.path.join(here, path), "w") as out:
        for label, ua in rows:
            out.write(f"{label}\t{ua}\n")
    print(path, len(rows))


for half, rows in halves.items():
    write(f"matomo-{half}.tsv", rows, 6000)
# Matomo's bots alternate between the halves: one file, and both halves need some.
write("matomo-bots-tune.tsv", bots[1::2], 100000)
write("matomo-bots-measure.tsv", bots[0::2], 100000)
data = json.load(open(cua))
write("crawler-user-agents.tsv",
      [("bot", clean(i)) for p in data for i in p.get("instances", [])], 100000)
