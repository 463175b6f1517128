#!/usr/bin/env python3
"""The maintenance pages of this agent and of the Python agent 9.0.1, side
by side (scripts/maintenance_vs_python.sh sets both up): for each page, the
first request on the database, then the median of 5, each agent in turn,
requests signed by the real temBoard 9.0.1 toolkit as the UI signs them.

usage: maintenance_vs_python.py N RUST_PORT PYTHON_PORT CA_FILE UI_PRIVATE_KEY

Prints one line per page: the times, the speed-ups, and whether both
agents gave the same sizes (total bytes of each database, schema and table)
in their last answers (a database's first connection writes its relation
cache file, pg_internal.init, so the first answers may differ by its size).
"""
import http.client
import json
import ssl
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone

from temboardagent.toolkit.signing import canonicalize_request, load_private_key, sign_v1

n = int(sys.argv[1])
ports = {"python": int(sys.argv[3]), "rust": int(sys.argv[2])}
ctx = ssl.create_default_context(cafile=sys.argv[4])
key = load_private_key(open(sys.argv[5], "rb").read())
conns = {}


def request(agent, path):
    """One signed GET; the connection is kept when the agent keeps it
    (http.client opens a new one after a `Connection: close`)."""
    port = ports[agent]
    if agent not in conns:
        conns[agent] = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=600)
    h = {"Host": "localhost:%d" % port}
    h["X-TemBoard-Date"] = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    h["X-TemBoard-Request-Id"] = str(uuid.uuid4())
    h["X-TemBoard-User"] = "bench"
    h["X-TemBoard-Signature"] = "v1:" + sign_v1(key, canonicalize_request("GET", path, h, None))
    t0 = time.perf_counter()
    try:
        conns[agent].request("GET", path, headers=h)
        r = conns[agent].getresponse()
        payload = r.read()
    except (http.client.HTTPException, OSError):
        conns[agent].close()
        raise
    dt = time.perf_counter() - t0
    if r.status != 200:
        sys.exit("%s GET %s: %d %s" % (agent, path, r.status, payload[:300]))
    return dt, json.loads(payload)


def sizes(doc):
    """The sizes of a page that both agents take from PostgreSQL's files
    (bloat estimates differ by design: see docs/api.md)."""
    out = {}
    for s in doc.get("schemas", []):
        out["schema " + s["name"]] = s.get("total_bytes")
    for t in doc.get("tables", []):
        out["table " + t["name"]] = t.get("total_bytes")
    for d in doc.get("databases", []):
        out["database " + d["datname"]] = d.get("total_bytes")
    if "total_bytes" in doc:
        out["total"] = doc["total_bytes"]
    return out


def fmt(x):
    return "%.3f s" % x if x >= 0.1 else "%.1f ms" % (x * 1000)


db = "t%d" % n
pages = (
    ("instance", "/maintenance"),
    ("database", "/maintenance/%s" % db),
    ("schema", "/maintenance/%s/schema/public" % db),
    ("table", "/maintenance/%s/schema/public/table/t_1" % db),
)
for label, path in pages:
    first, median, docs = {}, {}, {}
    for agent in ("python", "rust"):
        first[agent], docs[agent] = request(agent, path)
    times = {"python": [], "rust": []}
    for _ in range(5):
        for agent in ("python", "rust"):
            dt, docs[agent] = request(agent, path)
            times[agent].append(dt)
    for agent in times:
        median[agent] = statistics.median(times[agent])
    python_sizes, rust_sizes = sizes(docs["python"]), sizes(docs["rust"])
    same = python_sizes == rust_sizes
    if not same:
        for k in sorted(set(python_sizes) | set(rust_sizes)):
            if python_sizes.get(k) != rust_sizes.get(k):
                print("    %s %s: Python %s, this agent %s" % (label, k, python_sizes.get(k), rust_sizes.get(k)),
                      file=sys.stderr)
    print(
        "| %s | %s | %s first, %s median | %s first, %s median | %.1fx first, **%.1fx** median | %s |"
        % (
            "{:,}".format(n),
            label,
            fmt(first["python"]),
            fmt(median["python"]),
            fmt(first["rust"]),
            fmt(median["rust"]),
            first["python"] / first["rust"],
            median["python"] / median["rust"],
            "same sizes" if same else "sizes differ",
        ),
        flush=True,
    )
