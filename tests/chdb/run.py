"""Runs a plan of SQL steps on the ClickHouse engine that the `chdb` package embeds, for
tests/clickhouse_current.rs. The plan is a JSON list on stdin; the answer, on stdout, is a
JSON object: each named query's rows (as JSONEachRow gives them).

Steps:
  {"script": "..."}                       statements separated by ';' at line ends, `--` comments
  {"insert": "INSERT ...", "settings": {"k": "v"}, "data": "JSON lines"}
  {"sql": "..."}                          one statement, its answer dropped
  {"name": "...", "query": "SELECT ..."}  rows kept under `name`

Exits 3 when chdb cannot be imported, so the caller can tell a missing package from a failure.
"""

import json
import sys

try:
    from chdb import session
except ImportError as e:  # the caller decides whether a missing chdb may skip
    print(f"chdb is not installed: {e}", file=sys.stderr)
    sys.exit(3)


def statements(script):
    code = "\n".join(l for l in script.splitlines() if not l.lstrip().startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


def literal(v):
    return v if str(v).isdigit() else "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


def main():
    plan = json.load(sys.stdin)
    s = session.Session()
    out = {"version": s.query("SELECT version()", "TSV").bytes().decode().strip()}
    for step in plan:
        if "script" in step:
            for stmt in statements(step["script"]):
                s.query(stmt)
        elif "insert" in step:
            for k, v in step.get("settings", {}).items():
                s.query(f"SET {k} = {literal(v)}")
            s.query(step["insert"] + "\n" + step["data"])
        elif "sql" in step:
            s.query(step["sql"])
        else:
            text = s.query(step["query"], "JSONEachRow").bytes().decode()
            out[step["name"]] = [json.loads(l) for l in text.splitlines() if l.strip()]
    s.close()
    json.dump(out, sys.stdout)


main()
