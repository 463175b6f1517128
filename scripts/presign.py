#!/usr/bin/env python3
"""Signs N temBoard 9.x requests ahead of a load test, with the real 9.0.1 toolkit.

Every request needs its own X-TemBoard-Request-Id (the agent refuses a
replay), so wrk cannot sign: this signs them beforehand, on every core, and
writes one line per request, "DATE REQUEST_ID SIGNATURE", for
scripts/signed_wrk.lua to send. The Host header signed is localhost:PORT, the
one the Lua script sends.

usage: presign.py PORT UI_PRIVATE_KEY METHOD PATH N OUT_FILE
"""
import multiprocessing
import sys
import uuid
from datetime import datetime, timezone

from temboardagent.toolkit.signing import canonicalize_request, load_private_key, sign_v1

port, keyfile, method, path, n, out = sys.argv[1:7]
n = int(n)
key = None


def sign(_):
    global key
    if key is None:
        with open(keyfile, "rb") as f:
            key = load_private_key(f.read())
    h = {
        "Host": "localhost:%s" % port,
        "X-TemBoard-Date": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
        "X-TemBoard-Request-Id": str(uuid.uuid4()),
        "X-TemBoard-User": "bench",
    }
    sig = sign_v1(key, canonicalize_request(method, path, h))
    return "%s %s v1:%s" % (h["X-TemBoard-Date"], h["X-TemBoard-Request-Id"], sig)


with multiprocessing.Pool() as pool, open(out, "w") as f:
    for line in pool.imap_unordered(sign, range(n), chunksize=256):
        f.write(line + "\n")
