#!/usr/bin/env python3
"""GET /statements (temBoard 9.x, signed by the real 9.0.1 toolkit) on a
large pg_stat_statements: latency p50/p99 over N requests on one keep-alive
connection, the answer's size, and the memory of the http and probe workers
while they stream it: peak RSS (VmHWM, reset before with clear_refs, root
only) and the highest PSS seen by a sampler reading smaps_rollup every 10 ms.

usage: statements_cost.py PORT CA_FILE UI_PRIVATE_KEY HTTP_PID PROBE_PID [N]
"""
import http.client
import ssl
import statistics
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

from temboardagent.toolkit.signing import canonicalize_request, load_private_key, sign_v1

port, ca, keyfile, http_pid, probe_pid = sys.argv[1:6]
n = int(sys.argv[6]) if len(sys.argv) > 6 else 20
key = load_private_key(open(keyfile, "rb").read())
pids = {"http": http_pid, "probe": probe_pid}


def kib(pid, field, path="status"):
    with open("/proc/%s/%s" % (pid, path)) as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def headers():
    h = {
        "Host": "localhost:%s" % port,
        "X-TemBoard-Date": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
        "X-TemBoard-Request-Id": str(uuid.uuid4()),
        "X-TemBoard-User": "bench",
    }
    h["X-TemBoard-Signature"] = "v1:" + sign_v1(key, canonicalize_request("GET", "/statements", h))
    return h


signed = [headers() for _ in range(n + 1)]
ctx = ssl.create_default_context(cafile=ca)
conn = http.client.HTTPSConnection("localhost", int(port), context=ctx)
conn.request("GET", "/statements", headers=signed[0])
first = conn.getresponse()
body = first.read()
if first.status != 200:
    sys.exit("GET /statements: %d %s" % (first.status, body[:200]))
rows = body.count(b'"queryid"')
base = {name: (kib(pid, "VmRSS:"), kib(pid, "Pss:", "smaps_rollup")) for name, pid in pids.items()}
can_reset = True
for pid in pids.values():
    try:
        with open("/proc/%s/clear_refs" % pid, "w") as f:
            f.write("5")
    except OSError:
        can_reset = False
peak_pss = {name: 0 for name in pids}
stop = threading.Event()


def sample():
    while not stop.is_set():
        for name, pid in pids.items():
            peak_pss[name] = max(peak_pss[name], kib(pid, "Pss:", "smaps_rollup"))
        time.sleep(0.01)


t = threading.Thread(target=sample)
t.start()
times = []
for h in signed[1:]:
    t0 = time.perf_counter()
    conn.request("GET", "/statements", headers=h)
    r = conn.getresponse()
    r.read()
    times.append(time.perf_counter() - t0)
    if r.status != 200:
        sys.exit("unexpected %d" % r.status)
stop.set()
t.join()
times.sort()
print("GET /statements, %d entries, %.1f MB a answer, %d requests on one keep-alive connection:" % (rows, len(body) / 1e6, n))
print("  p50 %.0f ms, p99 %.0f ms" % (statistics.median(times) * 1000, times[min(len(times) - 1, int(len(times) * 0.99))] * 1000))
for name, pid in pids.items():
    rss, pss = base[name]
    peak = kib(pid, "VmHWM:") if can_reset else 0
    print("  %-5s worker: RSS %.1f MiB before, peak %s; PSS %.1f MiB before, highest seen %.1f MiB" % (
        name, rss / 1024, ("%.1f MiB" % (peak / 1024)) if can_reset else "n/a (not root)",
        pss / 1024, peak_pss[name] / 1024))
