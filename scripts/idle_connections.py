#!/usr/bin/env python3
"""Opens N idle TLS connections to the agent, reads the http worker's memory
while they are open, closes them and reads it again.

usage: idle_connections.py PORT CERT HTTP_WORKER_PID [N]

Prints one line: connections open at the peak, http worker RSS before, at the
peak and after (MiB), and whether /status kept answering meanwhile. Run by
scripts/bench.sh; needs `ulimit -n` above N for this process and the agent.
"""
import socket
import ssl
import sys
import threading
import time

port, cert, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
n = int(sys.argv[4]) if len(sys.argv) > 4 else 10_000
ctx = ssl.create_default_context(cafile=cert)


def rss_mib(p):
    for line in open(f"/proc/{p}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sockets(p):
    """Sockets the process holds open (its connections, plus a few fixed)."""
    import os
    n = 0
    for fd in os.listdir(f"/proc/{p}/fd"):
        try:
            n += os.readlink(f"/proc/{p}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


base_sockets = sockets(pid)


def established():
    """Connections the http worker holds."""
    return sockets(pid) - base_sockets


def status_ok():
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return t.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


before = rss_mib(pid)
conns, lock, failures = [], threading.Lock(), [0]


def opener(count):
    for _ in range(count):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            t = ctx.wrap_socket(s, server_hostname="localhost")
            with lock:
                conns.append(t)
        except OSError:
            with lock:
                failures[0] += 1


threads = [threading.Thread(target=opener, args=(n // 16,)) for _ in range(16)]
t0 = time.time()
for t in threads:
    t.start()
# Sample while opening: the peak of open connections and of memory.
peak_conns, peak_rss = 0, 0.0
while any(t.is_alive() for t in threads):
    peak_conns = max(peak_conns, established())
    peak_rss = max(peak_rss, rss_mib(pid))
    time.sleep(0.2)
opened_in = time.time() - t0
peak_conns = max(peak_conns, established())
peak_rss = max(peak_rss, rss_mib(pid))
served = status_ok()
for t in conns:
    try:
        t.close()
    except OSError:
        pass
conns.clear()
time.sleep(12)  # the worker trims its heap every 5 s after traffic
after = rss_mib(pid)
print(
    f"{n} idle TLS connections opened in {opened_in:.1f} s ({failures[0]} failed): "
    f"peak {peak_conns} open at once; http worker RSS {before:.1f} MiB before, "
    f"{peak_rss:.1f} MiB at the peak ({(peak_rss - before) * 1024 / max(peak_conns, 1):.1f} KiB per connection), "
    f"{after:.1f} MiB after they closed; /status answered meanwhile: {'yes' if served else 'NO'}"
)
