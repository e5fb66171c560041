"""Writes src/identity/ua/data/bots.txt, the built-in bot list: crawler-user-agents' patterns
(npm crawler-user-agents 1.60.0, MIT), less those that match a human user agent of the tuning
corpora (isbot's browsers.yml, matomo-tune.tsv), which are listed as they are dropped.

    python3 make_bots.py CRAWLER_USER_AGENTS_JSON
"""
import json, os, re, sys
import yaml

here = os.path.dirname(os.path.abspath(__file__))
humans = [ua for group in yaml.safe_load(open(os.path.join(here, "browsers.yml"))).values()
          for ua in group]
humans += [l.split("\t", 1)[1].rstrip("\n") for l in open(os.path.join(here, "matomo-tune.tsv"))
           if not l.startswith("bot\t")]
relabelled = {l.split("\t")[1] for l in open(os.path.join(here, "relabelled.tsv"))
              if not l.startswith("#") and l.strip()}
humans = [h for h in humans if h not in relabelled]
kept = []
for entry in json.load(open(sys.argv[1])):
    p = entry["pattern"]
    hit = next((h for h in humans if re.search(p, h)), None)
    if hit:
        print(f"dropped {p!r}: matches {hit!r}")
    else:
        kept.append(p)
out = os.path.join(here, "../../../src/identity/ua/data/bots.txt")
with open(out, "w") as f:
    f.write("# The built-in bot patterns: crawler-user-agents 1.60.0 (npm; MIT, see\n")
    f.write("# LICENSE-crawler-user-agents-MIT beside it), one regex a line, case-sensitive,\n")
    f.write("# less those that match a human of the tuning corpora (make_bots.py). Do not edit.\n")
    f.writelines(p + "\n" for p in kept)
print(len(kept), "patterns kept")
