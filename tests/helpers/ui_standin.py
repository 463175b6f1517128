#!/usr/bin/env python3
"""A small HTTPS stand-in for the temBoard 9.x UI, for tests/signed.rs.

Serves what `temboard-agent fetch-key` and `register` call, as UI 9.0.1
answers them (facts 9.x 11.2): GET /signing.key, POST /json/login (sets a
session cookie for user 'admin' / password 'admin'), POST /json/instances
(needs that cookie; 400 'Unknown environment' unless the environment is
'default'). Each instance body is appended to RECORD as one JSON line.

usage: ui_standin.py PORT CERT KEY SIGNING_KEY_FILE RECORD
Prints 'ready' once listening; serves until killed. UI_STANDIN_CLOCK_OFFSET
(seconds, default 0) shifts its Date header, as a UI host with a wrong clock.
"""
import email.utils
import http.server
import json
import os
import ssl
import sys
import time

PORT, CERT, KEY, SIGNING, RECORD = sys.argv[1:6]
COOKIE = "temboard=standin-session"
OFFSET = int(os.environ.get("UI_STANDIN_CLOCK_OFFSET", "0"))


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate((timestamp or time.time()) + OFFSET, usegmt=True)

    def answer(self, code, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/signing.key":
            with open(SIGNING, "rb") as f:
                return self.answer(200, f.read())
        self.answer(404, {"error": "Not found"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        data = json.loads(body or b"{}")
        if self.path == "/json/login":
            if data.get("username") == "admin" and data.get("password") == "admin":
                return self.answer(200, {"message": "OK"}, [("Set-Cookie", COOKIE + "; Path=/")])
            return self.answer(401, {"error": "Wrong username or password."})
        if self.path == "/json/instances":
            if not (self.headers.get("Cookie") or "").startswith(COOKIE):
                return self.answer(401, {"error": "Login required."})
            if data.get("environment") != "default":
                return self.answer(400, {"error": "Unknown environment"})
            with open(RECORD, "a") as f:
                f.write(json.dumps(data) + "\n")
            return self.answer(200, {"message": "OK"})
        self.answer(404, {"error": "Not found"})


server = http.server.HTTPServer(("127.0.0.1", int(PORT)), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
