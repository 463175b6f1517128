#!/usr/bin/env bash
# What a full run of the risks plugin costs (issue #30), on one PostgreSQL
# with 1, 100 and 1,000 databases (each with 60 small tables): the time of
# the instance checks and of the per-database scans (the agent's own debug
# lines), the agent's CPU over one whole cycle (probe worker and scheduler,
# /proc utime + stime between the end of two scans, which holds one
# instance run and one scan), the peak of the agent's PostgreSQL
# connections during it (pg_stat_activity polled every 10 ms), and the
# series of /metrics with and without the per-table families.
#
#   bash scripts/risks_cost.sh            (1, 100 and 1000 databases)
#   DATABASES="1 100" bash scripts/risks_cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh --tests >/dev/null
cargo build --release --quiet --bins
bin=$PWD/target/release/temboard-agent
work=$(mktemp -d /tmp/tba-risks.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/pg"
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres: "$work/pg"; as_pg=(runuser -u postgres --); fi
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pgport=$(free_port)
agent=
cleanup() {
  [ -n "$agent" ] && { kill -TERM "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true; }
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"${as_pg[@]}" "$pgbin/initdb" -N -D "$work/pg/data" -U postgres -A trust >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -o "-p $pgport -k $work/pg -c listen_addresses='' -c fsync=off -c max_connections=50 -c max_wal_size=4GB" start >/dev/null
psqlc() { "${as_pg[@]}" "$pgbin/psql" -h "$work/pg" -p "$pgport" -U postgres -Atq "$@"; }
# The template every database is made from: 60 tables, a sequence each.
psqlc -d template1 -c "DO \$\$ BEGIN FOR i IN 1..60 LOOP
  EXECUTE format('CREATE TABLE t_%s (id serial PRIMARY KEY, label text)', i);
  EXECUTE format('INSERT INTO t_%s (label) SELECT ''row '' || g FROM generate_series(1, 50) g', i);
END LOOP; END \$\$" >/dev/null
psqlc -d template1 -c "VACUUM ANALYZE" >/dev/null
"$bin" generate-cert --hostname localhost --cert "$work/server.pem" --key "$work/server.key" >/dev/null
chmod 644 "$work/server.key"
"$bin" hash-password "bench:$(head -c 12 /dev/urandom | base64)" > "$work/users"
chmod 644 "$work/users"
key=risks-cost-key-0123456789abcdef

run_agent() { # tables_per_database → starts the agent, sets $agent, $home
  home=$(mktemp -d "$work/home.XXXXXX")
  [ "$(id -u)" = 0 ] && chown postgres: "$home"
  cat > "$work/agent.conf" <<CONF
[temboard]
port = $port
address = 127.0.0.1
ssl_cert_file = $work/server.pem
ssl_key_file = $work/server.key
home = $home
users = $work/users
key = $key
plugins = ["risks"]
[postgresql]
host = $work/pg
port = $pgport
user = postgres
dbname = postgres
[logging]
method = file
destination = $home/agent.log
level = DEBUG
[risks]
interval = 10
tables_interval = 10
tables_per_database = $1
CONF
  "${as_pg[@]}" "$bin" --configfile "$work/agent.conf" >"$work/agent.out" 2>&1 &
  agent=$!
}
stop_agent() { kill -TERM "$agent"; wait "$agent" 2>/dev/null || true; agent=; }

have=1   # template1's copy "postgres" counts as the first database
printf '%-10s %-16s %-16s %-18s %-10s %-14s %-14s\n' databases "instance checks" "per-db scans" "agent CPU/cycle" "peak conns" "series (50/db)" "series (0/db)"
for n in ${DATABASES:-1 100 1000}; do
  # postgres was made before the tables: made again from template1.
  if [ "$have" = 1 ]; then psqlc -d template1 -c "DROP DATABASE postgres" -c "CREATE DATABASE postgres" >/dev/null; fi
  while [ "$have" -lt "$n" ]; do
    have=$((have + 1)); psqlc -d template1 -c "CREATE DATABASE d$have STRATEGY FILE_COPY" >/dev/null
  done
  port=$(free_port)
  run_agent 50
  out=$(python3 - "$home/agent.log" "$agent" "$work/pg" "$pgport" "${as_pg[*]}" "$pgbin" <<'PY'
import os, re, subprocess, sys, time
log, sup, sock, port, as_pg, pgbin = sys.argv[1:7]
def scans():
    try:
        return re.findall(r"per-database scans took ([0-9.]+) ms \((\d+) databases", open(log).read())
    except FileNotFoundError:
        return []
def instance():
    return re.findall(r"instance checks took ([0-9.]+) ms", open(log).read())
def descendants(pid):
    kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    return kids + [d for k in kids for d in descendants(k)]
def ticks():
    total = 0
    for pid in descendants(sup):
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except (FileNotFoundError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")
cmd = (as_pg.split() if as_pg else []) + [f"{pgbin}/psql", "-h", sock, "-p", port, "-U", "postgres", "-Atq", "-d", "template1", "-c",
       "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'temboard-agent'"]
deadline = time.time() + 1800
while len(scans()) < 1 and time.time() < deadline:
    if subprocess.run(["kill", "-0", sup]).returncode != 0:
        sys.exit("the agent stopped: " + open(os.path.join(os.path.dirname(os.path.dirname(log)), "agent.out")).read())
    time.sleep(0.05)
c0 = ticks(); peak = 0
# One whole cycle: until the next scan ends.
while len(scans()) < 2 and time.time() < deadline:
    n = int(subprocess.run(cmd, capture_output=True, text=True).stdout.strip() or 0)
    peak = max(peak, n)
    time.sleep(0.01)
c1 = ticks()
s = scans()[1]
i = instance()[-1]
print(f"{float(i):.1f} ms|{float(s[0]):.1f} ms ({s[1]} dbs)|{c1 - c0:.2f} s|{peak}")
PY
)
  series50=$(curl -sk -H "X-TemBoard-Agent-Key: $key" "https://127.0.0.1:$port/metrics" | grep -vc '^#')
  stop_agent
  port=$(free_port)
  run_agent 0
  python3 - "$home/agent.log" <<'PY'
import re, sys, time
deadline = time.time() + 1800
while time.time() < deadline:
    try:
        if "per-database scans took" in open(sys.argv[1]).read(): break
    except FileNotFoundError: pass
    time.sleep(0.05)
time.sleep(0.5)
PY
  # The next instance run stores the scan (every 10 s).
  for _ in $(seq 1 300); do
    body=$(curl -sk -H "X-TemBoard-Agent-Key: $key" "https://127.0.0.1:$port/metrics")
    grep -q 'temboard_risk_severity{check="sequences"' <<<"$body" && break
    sleep 0.1
  done
  series0=$(grep -vc '^#' <<<"$body")
  stop_agent
  IFS='|' read -r inst scan cpu peak <<<"$out"
  printf '%-10s %-16s %-16s %-18s %-10s %-14s %-14s\n' "$n" "$inst" "$scan" "$cpu" "$peak" "$series50" "$series0"
done
