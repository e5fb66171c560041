"""Makes crawlerdetect-{bots,browsers}-{tune,measure}.tsv: the
fixtures of JayBizzle's CrawlerDetect as PyPI `crawlerdetect` 0.4.2 ships them (sdist,
tests/fixtures/user_agent/crawlers.txt and devices.txt; MIT, LICENSE-crawlerdetect-MIT).
Every user agent already in another corpus of this folder is left out, so nothing here was
seen while the patterns were written; devices.txt (165,639 lines) is thinned to every n-th
distinct entry to keep the repo small. The entries alternate between a tune half and a
measure half, as Matomo's bots do. Lines are `bot<TAB>ua` or `human<TAB>ua`.

    python3 make_crawlerdetect.py FIXTURES_DIR   # .../tests/fixtures/user_agent
"""
import glob, os, sys
import yaml

src = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))


def clean(ua):
    return ua.replace("\t", " ").replace("\r", " ").replace("\n", " ").strip()


seen = set()
for f in glob.glob(os.path.join(here, "*.tsv")):
    if os.path.basename(f).startswith("crawlerdetect-"):
        continue
    for line in open(f, encoding="utf-8"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) >= 2 and not line.startswith("#"):
            seen.add(parts[1])
for f in ("crawlers.yml", "browsers.yml"):
    for group in yaml.safe_load(open(os.path.join(here, f), encoding="utf-8")).values():
        seen.update(clean(ua) for ua in group)


def write(name, label, fixture, cap):
    lines = open(os.path.join(src, fixture), encoding="utf-8").read().splitlines()
    rows = sorted({clean(ua) for ua in lines if clean(ua)})
    fresh = [ua for ua in rows if ua not in seen]
    step = max(1, -(-len(fresh) // cap))
    kept = fresh[::step]
    for half, part in (("tune", kept[1::2]), ("measure", kept[0::2])):
        with open(os.path.join(here, f"{name}-{half}.tsv"), "w", encoding="utf-8") as out:
            out.writelines(f"{label}\t{ua}\n" for ua in part)
    print(f"{name}: {len(rows)} distinct, {len(rows) - len(fresh)} already in another corpus, "
          f"{len(kept)} kept (every {step}), half of them to tune on")


write("crawlerdetect-bots", "bot", "crawlers.txt", 100000)
write("crawlerdetect-browsers", "human", "devices.txt", 12000)
