#!/usr/bin/env bash
# A fleet on one machine: N agents (default 50), each with its own home, port
# and configuration, against one PostgreSQL cluster, all scraped every 15 s
# by Debian's real Prometheus through a generated file_sd target list, with
# one read-only API token shared by the fleet (made on the first agent,
# added to the others with `temboard-agent-token create --from-stdin`).
# After DURATION seconds (default 180) it prints: targets up, series per
# agent, scrape duration p50/p99 as Prometheus records it
# (scrape_duration_seconds), the agents' http workers' CPU per scrape, and
# Prometheus's memory. Exits non-zero unless every target is up.
#
#   bash scripts/fleet.sh           # 50 agents, 3 minutes
#   DURATION=60 bash scripts/fleet.sh 10
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
duration=${DURATION:-180}
bash scripts/prereqs.sh --tests
command -v prometheus >/dev/null 2>&1 || {
  echo "prometheus is needed: apt-get install prometheus" >&2
  exit 1
}
echo "==> building release"
cargo build --release --quiet --bins
bin=$PWD/target/release/temboard-agent
token_tool=$PWD/target/release/temboard-agent-token
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d /tmp/tba-fleet.XXXXXX)
chmod 755 "$work"
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pgport=$(free_port)
promport=$(free_port)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg"
"${as_pg[@]}" "$pgbin/initdb" -N -D "$work/pg/data" -U postgres -A trust >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -o "-p $pgport -k $work/pg -c listen_addresses='' -c max_connections=$((n * 5 + 50)) -c shared_buffers=64MB" start >/dev/null
"$bin" generate-cert --hostname localhost --cert "$work/server.pem" --key "$work/server.key" >/dev/null
chmod 644 "$work/server.pem" "$work/server.key"
"$bin" hash-password "fleet:fleetpass" > "$work/users"
chmod 644 "$work/users"

echo "==> starting $n agents"
ports=()
for i in $(seq 1 "$n"); do
  home=$work/agent-$i
  mkdir -p "$home"
  [ "$(id -u)" = 0 ] && chown postgres: "$home"
  port=$(free_port)
  ports+=("$port")
  cat > "$work/agent-$i.conf" <<CONF
[temboard]
port = $port
address = 127.0.0.1
users = users
ssl_cert_file = server.pem
ssl_key_file = server.key
home = $home
hostname = agent-$i.example.org
[postgresql]
host = $work/pg
port = $pgport
[logging]
method = file
destination = $home/agent.log
level = WARNING
CONF
  # The token: made once, added to every other agent (as the agent's user,
  # so the state database stays the workers').
  if [ "$i" = 1 ]; then
    "${as_pg[@]}" "$token_tool" -c "$work/agent-$i.conf" create prometheus --read-only > "$work/token"
  else
    "${as_pg[@]}" "$token_tool" -c "$work/agent-$i.conf" create prometheus --read-only --from-stdin < "$work/token" >/dev/null
  fi
  "$bin" -c "$work/agent-$i.conf" >/dev/null 2>&1 &
  pids+=($!)
done
chmod 600 "$work/token"
python3 - "$work/server.pem" "${ports[@]}" <<'PY'
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[1])
for port in map(int, sys.argv[2:]):
    deadline = time.time() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                with ctx.wrap_socket(s, server_hostname="localhost") as t:
                    t.sendall(b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    if t.recv(64).startswith(b"HTTP/1.1 200"):
                        break
        except OSError:
            pass
        if time.time() > deadline:
            sys.exit(f"agent on port {port} never answered")
        time.sleep(0.1)
PY
echo "all $n agents answer"

# The file_sd target list and Prometheus's configuration, as an operator
# would write them (README, "Monitoring a fleet with Prometheus").
python3 - "$work/targets.json" "${ports[@]}" <<'PY'
import json, sys
json.dump([{"targets": [f"localhost:{p}" for p in sys.argv[2:]], "labels": {"fleet": "demo"}}], open(sys.argv[1], "w"), indent=1)
PY
cat > "$work/prometheus.yml" <<YML
global:
  scrape_interval: 15s
  scrape_timeout: 10s
scrape_configs:
  - job_name: temboard-agent
    scheme: https
    tls_config:
      ca_file: $work/server.pem
    authorization:
      credentials_file: $work/token
    file_sd_configs:
      - files: [$work/targets.json]
YML
promtool check config "$work/prometheus.yml" >/dev/null
mkdir -p "$work/prom"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
  --web.listen-address="127.0.0.1:$promport" --log.level=warn > "$work/prometheus.log" 2>&1 &
prompid=$!
pids+=("$prompid")

echo "==> Prometheus scrapes them every 15 s for $duration s"
python3 - "$promport" "$prompid" "$duration" "$n" "${pids[@]}" <<'PY'
import json, os, statistics, sys, time, urllib.parse, urllib.request
port, prompid, duration, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
agents = [int(p) for p in sys.argv[5:] if int(p) != prompid]
def children(ppid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
                if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
                    out.append((int(d), open(f"/proc/{d}/cmdline").read().split("\0")[0]))
            except OSError:
                pass
    return out
http = [pid for a in agents for pid, name in children(a) if name.endswith(": http")]
def cpu(pid):
    try:
        return int(open(f"/proc/{pid}/schedstat").read().split()[0]) / 1e9
    except OSError:
        return 0.0
def query(q, **params):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q, **params})
    return json.load(urllib.request.urlopen(url, timeout=10))["data"]["result"]
for _ in range(300):
    try:
        query("up")
        break
    except OSError:
        time.sleep(0.2)
t0 = time.time()
before = sum(cpu(p) for p in http)
time.sleep(duration)
used = sum(cpu(p) for p in http) - before
elapsed = time.time() - t0
up = query("up")
ok = sum(1 for r in up if r["value"][1] == "1")
samples = query("scrape_samples_scraped")
series = [float(r["value"][1]) for r in samples]
durations = sorted(float(v) for r in query(f"scrape_duration_seconds[{duration}s]") for _, v in r["values"])
scrapes = sum(1 for r in query(f"scrape_duration_seconds[{int(elapsed)}s]") for _ in r["values"])
rollup = {}
for line in open(f"/proc/{prompid}/smaps_rollup"):
    f = line.split()
    if len(f) >= 2 and f[0].endswith(":") and f[1].isdigit():
        rollup[f[0][:-1]] = int(f[1])
print(f"targets up: {ok} of {n}")
print(f"series per agent (scrape_samples_scraped): min {min(series):.0f}, median {statistics.median(series):.0f}, max {max(series):.0f}; {sum(series):.0f} in all")
q = lambda p: durations[min(len(durations) - 1, int(len(durations) * p))]
print(f"scrape duration (scrape_duration_seconds, {len(durations)} scrapes): p50 {q(0.5) * 1000:.1f} ms, p99 {q(0.99) * 1000:.1f} ms, max {durations[-1] * 1000:.1f} ms")
print(f"agents' http workers: {used:.2f} s of CPU over {elapsed:.0f} s for {scrapes} scrapes = {1000 * used / max(scrapes, 1):.2f} ms a scrape")
print(f"Prometheus memory after {elapsed:.0f} s: RSS {rollup.get('Rss', 0) / 1024:.1f} MiB, PSS {rollup.get('Pss', 0) / 1024:.1f} MiB, anonymous {rollup.get('Anonymous', 0) / 1024:.1f} MiB")
sys.exit(0 if ok == n else 1)
PY
