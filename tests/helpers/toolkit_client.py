#!/usr/bin/env python3
"""Sends requests to an agent signed by the real temBoard 9.0.1 toolkit.

The canonical text and the signature come from `temboardagent.toolkit.signing`
(PyPI temboard-agent==9.0.1, the code the UI 9.0.1 shares); the headers are
assembled as the UI's agent client does. Used by tests/signed.rs to prove our
verifier accepts what the real client signs.

usage: toolkit_client.py PORT CA_FILE PRIVATE_KEY_FILE REQUESTS_JSON
REQUESTS_JSON: [{"method", "path", "body"?, "user"?, "tamper"?}, ...]
Prints one JSON line per request: {"status", "body", "etag", "discover_etag"}.
"""
import http.client
import json
import ssl
import sys
import uuid
from datetime import datetime, timezone

from temboardagent.toolkit.signing import (
    canonicalize_request,
    load_private_key,
    sign_v1,
)


def main():
    port, ca, keyfile, spec = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    with open(keyfile, "rb") as f:
        key = load_private_key(f.read())
    ctx = ssl.create_default_context(cafile=ca)
    for r in json.loads(spec):
        method, path = r["method"], r["path"]
        body = r.get("body")
        body = body.encode() if body is not None else None
        headers = {
            "Host": "localhost:%d" % port,
            "X-TemBoard-Date": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
            "X-TemBoard-Request-Id": str(uuid.uuid4()),
            "X-TemBoard-User": r.get("user", "alice"),
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
            headers["Content-Length"] = str(len(body))
        canonical = canonicalize_request(method, path, headers, body or b"")
        headers["X-TemBoard-Signature"] = "v1:" + sign_v1(key, canonical)
        if r.get("tamper"):
            headers["X-TemBoard-User"] = "mallory"
        conn = http.client.HTTPSConnection(
            "localhost", port, context=ctx, timeout=30
        )
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        print(
            json.dumps(
                {
                    "status": resp.status,
                    "body": parsed,
                    "etag": resp.getheader("ETag"),
                    "discover_etag": resp.getheader("X-TemBoard-Discover-ETag"),
                }
            )
        )
        conn.close()


if __name__ == "__main__":
    main()
