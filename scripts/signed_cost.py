#!/usr/bin/env python3
"""Agent CPU per request: temBoard 9.x signed vs 2.x session, same route.

Signs N requests to GET /notifications with the real temBoard 9.0.1 toolkit
(distinct request ids, since a replay is refused), sends them on one
keep-alive connection, and reads the http worker's CPU time (utime+stime of
/proc/<pid>/stat) before and after; then does the same with N session
requests. Prints the CPU per request of each and the difference: what a
signature costs the agent. The client's own CPU does not count.

usage: signed_cost.py PORT CA_FILE UI_PRIVATE_KEY HTTP_PID SESSION [N]
"""
import http.client
import os
import ssl
import sys
import uuid
from datetime import datetime, timezone

from temboardagent.toolkit.signing import canonicalize_request, load_private_key, sign_v1

port, ca, keyfile, pid, session = sys.argv[1:6]
n = int(sys.argv[6]) if len(sys.argv) > 6 else 2000
tick = os.sysconf("SC_CLK_TCK")


def cpu():
    with open("/proc/%s/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def run(all_headers):
    ctx = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection("localhost", int(port), context=ctx)
    conn.request("GET", "/notifications", headers=all_headers[0])
    conn.getresponse().read()
    before = cpu()
    for h in all_headers[1:]:
        conn.request("GET", "/notifications", headers=h)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            sys.exit("unexpected %d" % r.status)
    return (cpu() - before) / (len(all_headers) - 1)


key = load_private_key(open(keyfile, "rb").read())
signed = []
for _ in range(n + 1):
    h = {
        "Host": "localhost:%s" % port,
        "X-TemBoard-Date": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
        "X-TemBoard-Request-Id": str(uuid.uuid4()),
        "X-TemBoard-User": "bench",
    }
    h["X-TemBoard-Signature"] = "v1:" + sign_v1(key, canonicalize_request("GET", "/notifications", h))
    signed.append(h)
plain = [{"X-Session": session} for _ in range(n + 1)]
s = run(signed)
p = run(plain)
bits = key.key_size
print("GET /notifications, %d requests each, one keep-alive connection, RSA-%d UI key:" % (n, bits))
print("  session: %.0f us of agent CPU a request" % (p * 1e6))
print("  signed:  %.0f us of agent CPU a request" % (s * 1e6))
print("  a signature costs the agent %.0f us" % ((s - p) * 1e6))
