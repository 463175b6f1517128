#!/usr/bin/env python3
"""The maintenance figures of scripts/maintenance_bench.sh, with requests
signed by the real temBoard 9.0.1 toolkit: page times for databases t<N>,
then /status and /activity latency idle and during a VACUUM FULL of
postgres.public.big scheduled through the API.

usage: maintenance_cost.py PORT CA_FILE UI_PRIVATE_KEY N [N...]
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

port, ca, keyfile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sizes = [int(n) for n in sys.argv[4:]]
key = load_private_key(open(keyfile, "rb").read())
ctx = ssl.create_default_context(cafile=ca)


def connect():
    deadline = time.time() + 60
    while True:
        try:
            c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=120)
            c.request("GET", "/status")
            c.getresponse().read()
            return c
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


conn = connect()


def request(method, path, body=None, signed=True):
    h = {"Host": "localhost:%d" % port}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(data))
    if signed:
        h["X-TemBoard-Date"] = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        h["X-TemBoard-Request-Id"] = str(uuid.uuid4())
        h["X-TemBoard-User"] = "bench"
        h["X-TemBoard-Signature"] = "v1:" + sign_v1(key, canonicalize_request(method, path, h, data))
    t0 = time.perf_counter()
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    payload = r.read()
    dt = time.perf_counter() - t0
    if r.status != 200:
        sys.exit("%s %s: %d %s" % (method, path, r.status, payload[:300]))
    return dt, json.loads(payload) if payload else None


def ms(x):
    return "%.0f ms" % (x * 1000) if x >= 0.1 else "%.1f ms" % (x * 1000)


print("maintenance pages (signed, one keep-alive connection; first request, then median of 5):")
for n in sizes:
    for label, path in (("database page", "/maintenance/t%d" % n), ("schema page", "/maintenance/t%d/schema/public" % n)):
        first, doc = request("GET", path)
        times = sorted(request("GET", path)[0] for _ in range(5))
        if "schemas" in doc:
            count = sum(s["n_tables"] for s in doc["schemas"] if s["name"] == "public")
        else:
            count = len(doc["tables"])
        print("  %6d tables, %s (%d tables listed): first %s, median %s, max %s, %d bytes"
              % (n, label, count, ms(first), ms(statistics.median(times)), ms(times[-1]), len(json.dumps(doc))))
first, doc = request("GET", "/maintenance")
print("  instance page (%d databases): %s" % (len(doc["databases"]), ms(first)))


def latencies(seconds):
    st, act = [], []
    end = time.time() + seconds
    while time.time() < end:
        st.append(request("GET", "/status", signed=False)[0])
        act.append(request("GET", "/activity")[0])
    return st, act


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


idle_st, idle_act = latencies(5)
_, r = request("POST", "/maintenance/postgres/schema/public/table/big/vacuum", {"mode": "full"})
task = r["id"]
deadline = time.time() + 30
while True:
    _, rows = request("GET", "/maintenance/postgres/vacuum/scheduled")
    status = next((x["status"] for x in rows if x["id"] == task), None)
    if status in ("doing", "done", "failed"):
        break
    if time.time() > deadline:
        sys.exit("the VACUUM FULL never started")
t0 = time.time()
st, act = [], []
while status == "doing":
    a, b = latencies(0.5)
    st += a
    act += b
    _, rows = request("GET", "/maintenance/postgres/vacuum/scheduled")
    status = next((x["status"] for x in rows if x["id"] == task), None)
took = time.time() - t0
print("latency, sequential requests (p50 / p99):")
print("  idle:            /status %s / %s, signed /activity %s / %s (%d requests)"
      % (ms(pct(idle_st, .5)), ms(pct(idle_st, .99)), ms(pct(idle_act, .5)), ms(pct(idle_act, .99)), len(idle_st) + len(idle_act)))
if st:
    print("  VACUUM FULL (%.1f s, ended %s): /status %s / %s, signed /activity %s / %s (%d requests); ratio of p50s: /status %.2fx, /activity %.2fx"
          % (took, status, ms(pct(st, .5)), ms(pct(st, .99)), ms(pct(act, .5)), ms(pct(act, .99)), len(st) + len(act),
             pct(st, .5) / pct(idle_st, .5), pct(act, .5) / pct(idle_act, .5)))
else:
    print("  the VACUUM FULL ended before a measure (%s): raise ROWS" % status)
