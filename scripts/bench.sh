#!/usr/bin/env bash
# Prints performance figures of the agent on this machine (release build):
# binary size, time from launch to the first 200 on /status, memory (PSS and
# private first, RSS as a detail) of every process and CPU over an idle
# period, requests/s and p50/p99 at concurrency 1 and 16 (keep-alive) for
# /status, /profile, /activity, /dashboard, POST /login and /metrics, signed
# 9.x /activity and /discover, /status
# beside Debian's nginx answering the same body over TLS, /status with a new TLS
# connection per request, 10,000 idle TLS connections, /activity with 10, 100
# and 1,000 backends, one monitoring collection on 1, 100 and 1,000
# databases, the criterion micro-benchmarks (IPC codec, hba, units,
# temBoard 9.x signature verification), and the maintenance pages and a
# VACUUM FULL's effect on /activity (scripts/maintenance_bench.sh).
#
#   bash scripts/bench.sh              IDLE=60 s of idle before memory/CPU are read
#   MICRO=0 bash scripts/bench.sh      skip the criterion micro-benchmarks
#   MAINTENANCE=0 bash scripts/bench.sh   skip the maintenance figures (10,000 tables: minutes)
#   IDLE=10 DURATION=3 BACKENDS=10 DATABASES=1 IDLE_CONNECTIONS=1000 bash scripts/bench.sh   (quick run)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh --tests
# The real temBoard toolkit signs requests: the tests' private Python.
tpy=$(bash scripts/test-python.sh)
idle=${IDLE:-60}
runs=${RUNS:-20}
duration=${DURATION:-10}
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "wrk is needed for the throughput figures: sudo apt-get install -y wrk" >&2
    exit 1
  fi
fi

echo "==> building release"
cargo build --release --quiet --bin temboard-agent
bin=target/release/temboard-agent
# A just-built binary's pages are dirty in the page cache: write them back
# so the memory figures below show them as what they are (shared, clean).
sync
# 10,000 idle connections need as many descriptors (the agent raises its own
# soft limit to the hard one; the load generators need it too).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d /tmp/tba-bench.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/home" "$work/pg"
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres: "$work/home" "$work/pg"; as_pg=(runuser -u postgres --); fi
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)}
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"${as_pg[@]}" "$pgbin/initdb" -N -D "$work/pg/data" -U postgres -A trust >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -o "-p $pgport -k $work/pg -c listen_addresses='' -c max_connections=1100 -c shared_buffers=64MB -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=10000" start >/dev/null
"$bin" generate-cert --hostname localhost --cert "$work/server.pem" --key "$work/server.key" >/dev/null
# The temBoard 9.x UI's key pair (4096 bits, what `temboard generate-key`
# makes): the agent finds the public key beside its configuration.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$work/ui-private.pem" 2>/dev/null
openssl pkey -in "$work/ui-private.pem" -pubout -out "$work/signing-public.pem"
"$bin" hash-password "bench:benchpass" > "$work/users"
chmod 644 "$work/users"
cat > "$work/agent.conf" <<CONF
[temboard]
port = $port
address = 127.0.0.1
users = users
ssl_cert_file = server.pem
ssl_key_file = server.key
home = $work/home
hostname = bench.example.org
key = benchkey
plugins = ["activity", "administration", "dashboard", "monitoring", "pgconf", "statements", "maintenance"]
# The idle-connections figure opens 10,000 from one address: above the
# default per-address cap, which would (rightly) refuse them.
max_connections_per_client = 12000
[postgresql]
host = $work/pg
port = $pgport
[logging]
method = file
destination = $work/agent.log
level = WARNING
CONF

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(date -u +%Y-%m-%d)"
awk -v b="$bin" -v s="$(stat -c %s "$bin")" 'BEGIN { printf "binary size (release, %s): %d bytes (%.1f MiB)\n", b, s, s / 1048576 }'

python3 - "$bin" "$work/agent.conf" "$port" "$work/server.pem" "$runs" "$idle" "$pgbin/psql" "$work/pg" "$pgport" "${as_pg[@]}" <<'PY'
import os, signal, socket, ssl, subprocess, sys, time, statistics
binary, conf, port, cert, runs, idle = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
psql, pgsock, pgport = sys.argv[7], sys.argv[8], sys.argv[9]
as_pg = sys.argv[10:]
ctx = ssl.create_default_context(cafile=cert)
def status_ok():
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return t.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
def start():
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "-c", conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not status_ok():
        if p.poll() is not None:
            sys.exit("agent exited during startup")
        time.sleep(0.0005)
    return p, time.perf_counter() - t0
def stop(p):
    p.send_signal(signal.SIGTERM); p.wait(10)
times = []
for _ in range(runs):
    p, dt = start(); times.append(dt); stop(p)
times.sort()
print(f"launch -> first 200 on /status over {runs} runs: median {statistics.median(times)*1000:.1f} ms, "
      f"min {times[0]*1000:.1f} ms, max {times[-1]*1000:.1f} ms")
def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
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
    return sorted(out, key=lambda x: x[1])
p, _ = start()
def cpu_ticks(pid):
    """CPU time of a process in nanoseconds (schedstat is finer than stat's ticks)."""
    try:
        return int(open(f"/proc/{pid}/schedstat").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
def pg_agent_backends():
    out = subprocess.run(as_pg + [psql, "-h", pgsock, "-p", pgport, "-U", "postgres", "-Atc",
                          "SELECT pid FROM pg_stat_activity WHERE application_name = 'temboard-agent'", "postgres"],
                         capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]
time.sleep(3)  # let the first collections and connections happen
watched = [(p.pid, "supervisor")] + children(p.pid)
before = {pid: cpu_ticks(pid) for pid, _ in watched}
pg_before = {pid: cpu_ticks(pid) for pid in pg_agent_backends()}
time.sleep(idle)
hz = 1e9
print(f"CPU over {idle} s idle (dashboard every 2 s):")
total_cpu = 0.0
for pid, name in watched:
    used = (cpu_ticks(pid) - before.get(pid, 0)) / hz
    total_cpu += used
    print(f"  {name:<28} {used:7.3f} s")
pg_cpu = sum((cpu_ticks(pid) - pg_before.get(pid, 0)) / hz for pid in pg_agent_backends())
print(f"  {'total agent':<28} {total_cpu:7.3f} s = {100 * total_cpu / idle:.3f} % of one core, {60 * total_cpu / idle:.3f} s per minute")
print(f"  {'PostgreSQL (agent backends)':<28} {pg_cpu:7.3f} s, {60 * pg_cpu / idle:.3f} s per minute")
collections = idle / 2
sched = sum((cpu_ticks(pid) - before.get(pid, 0)) / hz for pid, name in watched if name.endswith(("scheduler", "probe")))
print(f"  one dashboard collection ~ {1000 * sched / collections:.2f} ms of agent CPU (scheduler + probe) and {1000 * pg_cpu / collections:.2f} ms of PostgreSQL CPU")
procs = [(p.pid, "supervisor")] + children(p.pid)
def rollup(pid):
    out = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        f = line.split()
        if len(f) >= 2 and f[0].endswith(":") and f[1].isdigit():
            out[f[0][:-1]] = int(f[1])
    return out
total = total_pss = total_private = total_anon = 0
print(f"memory after {idle} s idle: PSS is what the agent costs the host (shared pages divided among")
print(f"the processes that map them), private is what stopping it gives back at once; RSS, a detail,")
print(f"counts the binary's and libc's shared pages again in every process (docs/performance.md):")
for pid, name in procs:
    m = rollup(pid)
    r, pss, anon = m.get("Rss", 0), m.get("Pss", 0), m.get("Anonymous", 0)
    private = m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)
    total += r; total_pss += pss; total_private += private; total_anon += anon
    print(f"  {name:<28} PSS {pss/1024:5.1f} MiB   private {private/1024:5.1f} MiB   (RSS {r/1024:5.1f}, anonymous {anon/1024:4.1f})")
print(f"  {'total':<28} PSS {total_pss/1024:5.1f} MiB   private {total_private/1024:5.1f} MiB   (RSS {total/1024:5.1f}, anonymous {total_anon/1024:4.1f})")
open(os.path.join(os.path.dirname(conf), "agent.pid"), "w").write(str(p.pid))
PY
agentpid=$(cat "$work/agent.pid")

session=$(python3 - "$port" "$work/server.pem" <<'PY'
import http.client, json, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
c = http.client.HTTPSConnection("localhost", int(sys.argv[1]), context=ctx)
c.request("POST", "/login", json.dumps({"username": "bench", "password": "benchpass"}), {"Content-Type": "application/json"})
print(json.loads(c.getresponse().read())["session"])
PY
)

# wrk runs on the same 2 cores as the agent: figures are a lower bound.
wrk_line() { # label, concurrency, threads, extra args...
  local label=$1 conc=$2 threads=$3; shift 3
  local out
  out=$(wrk --latency -t "$threads" -c "$conc" -d "${duration}s" "$@" 2>&1)
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' <<<"$out")
  printf "  %-34s c=%-3s %10s req/s   p50 %-9s p99 %-9s %s\n" "$label" "$conc" "$rps" "$p50" "$p99" "$errors"
}
echo
echo "temBoard 9.x signed requests vs 2.x sessions (agent CPU a request, the real 9.0.1 toolkit signs):"
httppid=$(pgrep -P "$agentpid" -f "temboard-agent: http" | head -n 1)
"$tpy" scripts/signed_cost.py "$port" "$work/server.pem" "$work/ui-private.pem" "$httppid" "$session" "${SIGNED:-2000}" | sed 's/^/  /'

cat > "$work/login.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"username": "bench", "password": "benchpass"}'
wrk.headers["Content-Type"] = "application/json"
LUA
echo
echo "throughput over HTTPS with keep-alive (wrk, ${duration} s each, load generator on the same machine):"
for c in 1 16; do
  t=1; [ "$c" -gt 1 ] && t=2
  wrk_line "GET /status" "$c" "$t" "https://localhost:$port/status"
  wrk_line "GET /profile (authenticated)" "$c" "$t" -H "X-Session: $session" "https://localhost:$port/profile"
  wrk_line "GET /activity (authenticated)" "$c" "$t" -H "X-Session: $session" "https://localhost:$port/activity"
  wrk_line "GET /dashboard (authenticated)" "$c" "$t" -H "X-Session: $session" "https://localhost:$port/dashboard"
  wrk_line "POST /login (success)" "$c" "$t" -s "$work/login.lua" "https://localhost:$port/login"
  wrk_line "GET /metrics (agent key)" "$c" "$t" -H "X-TemBoard-Agent-Key: benchkey" "https://localhost:$port/metrics"
done

# temBoard 9.x: every request signed (distinct ids: a replay is refused), so
# the requests are signed beforehand by the real toolkit (scripts/presign.py)
# and wrk sends each once (scripts/signed_wrk.lua).
echo
# One signed route at c=1 and c=16: its requests signed beforehand.
signed_lines() { # label, path
  for spec in "1 1 2500" "16 2 6000"; do
    read -r conc threads per_second <<<"$spec"
    n=$((duration * per_second))
    "$tpy" scripts/presign.py "$port" "$work/ui-private.pem" GET "$2" "$n" "$work/signed-$conc.txt"
    wrk_line "$1" "$conc" "$threads" -s scripts/signed_wrk.lua \
      "https://localhost:$port$2" -- "$work/signed-$conc.txt" "$threads" "$port" GET "$2"
  done
}
echo "temBoard 9.x signed GET /activity (signed beforehand by the real 9.0.1 toolkit, RSA-4096 UI key,"
echo "a distinct request id each; compare with the session lines above):"
signed_lines "GET /activity (signed, 9.x shape)" /activity
# GET /discover, signed: answered from memory while PostgreSQL neither
# restarts, reloads nor is promoted (the scheduler checks every 10 s).
echo
echo "temBoard 9.x signed GET /discover (signed beforehand by the real 9.0.1 toolkit):"
signed_lines "GET /discover (signed, 9.x)" /discover

# GET /statements on a full pg_stat_statements (10,000 entries at most, of
# which 9,800 with 2 KiB texts): latency and what the workers pay.
echo
python3 - > "$work/statements.sql" <<'PY'
pad = "x" * 2048
print("CREATE EXTENSION IF NOT EXISTS pg_stat_statements;")
for i in range(1, 99):
    for j in range(1, 101):
        print("/* %s */ SELECT ARRAY[%s], ARRAY[%s];" % (pad, ",".join(["1"] * i), ",".join(["2"] * j)))
PY
chmod 644 "$work/statements.sql"
"${as_pg[@]}" "$pgbin/psql" -h "$work/pg" -p "$pgport" -U postgres -Atq -f "$work/statements.sql" postgres >/dev/null
probepid=$(pgrep -P "$agentpid" -f "temboard-agent: probe" | head -n 1)
"$tpy" scripts/statements_cost.py "$port" "$work/server.pem" "$work/ui-private.pem" "$httppid" "$probepid" "${STATEMENTS:-20}" | sed 's/^/  /'

# The practical limit for a tiny HTTPS answer on this machine: Debian's nginx
# answering the same JSON body as our /status, over TLS with the same
# certificate and key, as many worker processes as cores. Runs alternate
# (agent, nginx, ...) so a change in the machine's load hits both; medians.
echo
if ! command -v nginx >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 || true
  systemctl stop nginx >/dev/null 2>&1 || true
fi
if command -v nginx >/dev/null 2>&1; then
  ngx=$work/nginx
  mkdir -p "$ngx"
  ngxport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  body=$(python3 - "$port" "$work/server.pem" <<'PY'
import http.client, ssl, sys
c = http.client.HTTPSConnection("localhost", int(sys.argv[1]), context=ssl.create_default_context(cafile=sys.argv[2]))
c.request("GET", "/status")
b = c.getresponse().read().decode()
assert not any(ch in b for ch in "'$\\"), "the /status body cannot go into an nginx string as it is"
print(b)
PY
)
  user_line=""
  [ "$(id -u)" = 0 ] && user_line="user root;"
  cat > "$ngx/nginx.conf" <<NGX
$user_line
worker_processes $(nproc);
pid $ngx/nginx.pid;
error_log $ngx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $ngx/body;
  proxy_temp_path $ngx/proxy;
  fastcgi_temp_path $ngx/fastcgi;
  uwsgi_temp_path $ngx/uwsgi;
  scgi_temp_path $ngx/scgi;
  server {
    listen 127.0.0.1:$ngxport ssl;
    ssl_certificate $work/server.pem;
    ssl_certificate_key $work/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 100000000;
    location = /status { default_type application/json; return 200 '$body'; }
  }
}
NGX
  nginx -c "$ngx/nginx.conf" -e "$ngx/error.log"
  for _ in $(seq 50); do [ -s "$ngx/nginx.pid" ] && break; sleep 0.1; done
  echo "GET /status beside Debian's nginx $(nginx -v 2>&1 | sed 's#.*/##') answering the same body over TLS with the same"
  echo "certificate ($(nproc) worker processes; 3 alternating runs of ${duration} s each, medians):"
  rps_of() { awk '{for (i = 1; i <= NF; i++) if ($i == "req/s") print $(i - 1)}'; }
  for spec in "16 2 keep-alive" "16 1 new-connection"; do
    read -r conc threads kind <<<"$spec"
    extra=()
    [ "$kind" = new-connection ] && extra=(-H "Connection: close")
    agent_runs=() nginx_runs=()
    for _ in 1 2 3; do
      agent_runs+=("$(wrk_line "agent" "$conc" "$threads" "${extra[@]}" "https://localhost:$port/status" | rps_of)")
      nginx_runs+=("$(wrk_line "nginx" "$conc" "$threads" "${extra[@]}" "https://localhost:$ngxport/status" | rps_of)")
    done
    python3 - "$kind" "$conc" "${agent_runs[*]}" "${nginx_runs[*]}" <<'PY'
import statistics, sys
kind, conc, a, n = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
ma, mn = statistics.median(a), statistics.median(n)
print(f"  {kind:<15} c={conc}: agent {ma:>10,.0f} req/s  nginx {mn:>10,.0f} req/s  ratio {ma / mn:.2f}x"
      f"   (runs: agent {' '.join(f'{x:,.0f}' for x in a)}; nginx {' '.join(f'{x:,.0f}' for x in n)})")
PY
  done
  kill -QUIT "$(cat "$ngx/nginx.pid")" 2>/dev/null || true
else
  echo "nginx is not installed (apt-get install nginx-light): no comparison with the practical limit"
fi
echo
echo "a new TCP + TLS 1.3 connection for every request (wrk with Connection: close, resuming"
echo "sessions with the agent's tickets). wrk's OpenSSL spends ~3x the agent's CPU on each"
echo "connection: with 2 threads it takes 1.5 of the 2 cores and is what limits the figure,"
echo "so it runs on 1 thread here (2 threads shown for comparison):"
httppid=$(pgrep -P "$agentpid" -f "temboard-agent: http")
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for spec in "16 1" "32 1" "16 2"; do
  read -r conc threads <<<"$spec"
  t0=$(cpu_ticks "$httppid")
  line=$(wrk_line "GET /status, new connection each" "$conc" "$threads" -H "Connection: close" "https://localhost:$port/status")
  t1=$(cpu_ticks "$httppid")
  rps=$(awk '{for (i = 1; i <= NF; i++) if ($i == "req/s") print $(i - 1)}' <<<"$line")
  per=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v r="$rps" -v d="$duration" 'BEGIN { if (r > 0) printf "%.0f", t / hz / (r * d) * 1e6 }')
  printf "%s  wrk threads %s, agent CPU %s us a connection\n" "$line" "$threads" "$per"
done

echo
echo "idle TLS connections (handshake done, nothing sent; python client on the same machine):"
printf '  '
"$tpy" scripts/idle_connections.py "$port" "$work/server.pem" "$httppid" "${IDLE_CONNECTIONS:-10000}"

# /activity with N idle client backends (pgbench clients sleeping client-side).
echo
echo "GET /activity (authenticated, c=1, ${duration} s) with N idle backends:"
ulimit -n 8192 2>/dev/null || true
printf '\\sleep 600 s\n' > "$work/idle.sql"
chmod 644 "$work/idle.sql"
for n in ${BACKENDS:-10 100 1000}; do
  "${as_pg[@]}" "$pgbin/pgbench" -n -h "$work/pg" -p "$pgport" -U postgres -c "$n" -j 4 -T 600 -f "$work/idle.sql" postgres >/dev/null 2>&1 &
  pgb=$!
  for _ in $(seq 300); do
    have=$("${as_pg[@]}" "$pgbin/psql" -h "$work/pg" -p "$pgport" -U postgres -Atc "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench'" postgres 2>/dev/null || echo 0)
    [ "$have" -ge "$n" ] && break
    sleep 0.2
  done
  wrk_line "GET /activity, $have backends" 1 1 -H "X-Session: $session" "https://localhost:$port/activity"
  kill "$pgb" 2>/dev/null; wait "$pgb" 2>/dev/null || true
  "${as_pg[@]}" "$pgbin/psql" -h "$work/pg" -p "$pgport" -U postgres -Atc "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pgbench'" postgres >/dev/null 2>&1 || true
done

kill -TERM "$agentpid"
for _ in $(seq 50); do kill -0 "$agentpid" 2>/dev/null || break; sleep 0.1; done

# One monitoring collection with 1, 100 and 1,000 databases: time (from the
# scheduler's debug log), agent CPU per collection, peak agent connections.
echo
echo "monitoring collection (every probe, the bloat estimates every 5 s here) with N databases:"
sed -i 's/^level = WARNING/level = WARNING\ndebug = scheduler/' "$work/agent.conf"
printf '[monitoring]\nscheduler_interval = 5\nprobe_intervals = heap_bloat:5, btree_bloat:5\n' >> "$work/agent.conf"
psqlc() { "${as_pg[@]}" "$pgbin/psql" -h "$work/pg" -p "$pgport" -U postgres -Atq "$@" postgres; }
have=1
for n in ${DATABASES:-1 100 1000}; do
  while [ "$have" -lt "$n" ]; do
    batch=""
    for i in $(seq "$have" $((n - 1))); do batch+="CREATE DATABASE bench_$i;"$'\n'; done
    printf '%s' "$batch" | psqlc >/dev/null
    have=$n
  done
  : > "$work/agent.log"
  "$bin" -c "$work/agent.conf" >/dev/null 2>&1 &
  apid=$!
  res=$(python3 - "$apid" "$work/agent.log" "$pgbin/psql" "$work/pg" "$pgport" "${as_pg[@]}" <<'PY'
import os, subprocess, sys, time
apid, log, psql, sock, port, as_pg = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
def children(ppid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) == ppid:
                    out.append(int(d))
            except OSError:
                pass
    return out
def cpu(pid):
    try:
        return int(open(f"/proc/{pid}/schedstat").read().split()[0])
    except (OSError, ValueError):
        return 0
time.sleep(2)
pids = [apid] + children(apid)
before = sum(cpu(p) for p in pids)
peak = 0
# At least 10.5 s (two collections), and until the bloat estimates of every
# database have finished once (3 minutes at most).
t0 = time.time()
def slow_done():
    return "per-database probes took" in open(log, errors="replace").read()
while time.time() < t0 + 10.5 or (not slow_done() and time.time() < t0 + 180):
    out = subprocess.run(as_pg + [psql, "-h", sock, "-p", port, "-U", "postgres", "-Atc",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'temboard-agent'", "postgres"],
        capture_output=True, text=True).stdout.strip()
    peak = max(peak, int(out or 0))
    time.sleep(0.2)
used = (sum(cpu(p) for p in pids) - before) / 1e9
print(f"{used:.3f} {time.time() - t0:.0f} {peak}")
PY
)
  kill -TERM "$apid"; wait "$apid" 2>/dev/null || true
  times=$(grep -o 'monitoring collection took [0-9.]* ms' "$work/agent.log" | awk '{print $4}' | tr '\n' ' ' || true)
  slow=$(grep -o 'per-database probes took [0-9.]* ms' "$work/agent.log" | awk '{print $4}' | tr '\n' ' ' || true)
  read -r used window peak <<<"$res"
  printf "  %5s databases: collection times %s ms; bloat estimates of every database (their own thread) %s ms; agent CPU %s s over %s s (collections every 5 s + the estimates); peak agent connections %s\n" \
    "$n" "${times:-none}" "${slow:-none}" "$used" "$window" "$peak"
done

if [ "${MICRO:-1}" = 1 ]; then
  echo
  echo "==> IPC codec micro-benchmarks (criterion)"
  cargo bench --quiet --bench ipc_frame -- --warm-up-time 1 --measurement-time 3 2>/dev/null | grep -E "^(encode|decode)|time:" || true
  echo
  echo "==> temBoard 9.x signed request verification (criterion: canonical text, RSA-2048 and RSA-4096 PSS)"
  cargo bench --quiet --bench signing -- --warm-up-time 1 --measurement-time 3 2>/dev/null | grep -E "^(canonical|verify)|time:" || true
  echo "==> pgconf micro-benchmarks (criterion: hba parse/write, unit conversion)"
  cargo bench --quiet --bench pgconf -- --warm-up-time 1 --measurement-time 3 2>/dev/null | grep -E "^(hba|unit|typed)|time:" || true
fi

if [ "${MAINTENANCE:-1}" = 1 ]; then
  echo
  echo "==> maintenance plugin (scripts/maintenance_bench.sh)"
  bash scripts/maintenance_bench.sh | sed 's/^/  /'
fi
