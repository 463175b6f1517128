#!/usr/bin/env bash
# The maintenance pages, this agent against the Python agent 9.0.1 (issue
# #31), side by side on one PostgreSQL: for N in $TABLES (default 1000 and
# 10000), a database of N tables (each with a primary key, a text column and
# 100 analyzed rows) is created, the instance, database, schema and table
# pages are read from both agents (signed requests, first then median of 5,
# scripts/maintenance_vs_python.py), and the database is dropped.
#
#   bash scripts/maintenance_vs_python.sh
#   TABLES=1000 bash scripts/maintenance_vs_python.sh      (quick run)
#
# The Python agent lives in a private virtual environment
# ($TBA_PY_AGENT, default /var/cache/temboard-agent-tests/agent901 as root),
# with psycopg2-binary, made from the system's Python so that the postgres
# user can run it; never on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh --tests >/dev/null
if [ "$(id -u)" = 0 ]; then
  venv=${TBA_PY_AGENT:-/var/cache/temboard-agent-tests/agent901}
else
  venv=${TBA_PY_AGENT:-${XDG_CACHE_HOME:-$HOME/.cache}/temboard-agent-tests/agent901}
fi
if ! "$venv/bin/python3" -c 'import psycopg2, temboardagent.toolkit.signing' >/dev/null 2>&1; then
  echo "==> installing the Python agent 9.0.1 and psycopg2-binary from PyPI into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  # The system's Python (not a per-user one): the agent runs as postgres.
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check temboard-agent==9.0.1 psycopg2-binary >&2
  chmod -R a+rX "$venv"
fi
cargo build --release --quiet --bins
bin=$PWD/target/release/temboard-agent

work=$(mktemp -d /tmp/tba-vs.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/home" "$work/pyhome" "$work/pg"
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres: "$work/home" "$work/pyhome" "$work/pg"; as_pg=(runuser -u postgres --); fi
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pgport=$(free_port)
port=$(free_port)
pyport=$(free_port)
rspid=
pypid=
cleanup() {
  for p in $rspid $pypid; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"${as_pg[@]}" "$pgbin/initdb" -N -D "$work/pg/data" -U postgres -A trust >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -o "-p $pgport -k $work/pg -c listen_addresses='' -c shared_buffers=128MB -c max_locks_per_transaction=256 -c autovacuum=off" start >/dev/null
"$bin" generate-cert --hostname localhost --cert "$work/server.pem" --key "$work/server.key" >/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$work/ui-private.pem" 2>/dev/null
openssl pkey -in "$work/ui-private.pem" -pubout -out "$work/signing-public.pem"
chmod 644 "$work/server.key"
for agent in rust python; do
  if [ $agent = rust ]; then p=$port; home=$work/home; else p=$pyport; home=$work/pyhome; fi
  cat > "$work/$agent.conf" <<CONF
[temboard]
port = $p
address = 127.0.0.1
ssl_cert_file = $work/server.pem
ssl_key_file = $work/server.key
signing_public_key = $work/signing-public.pem
hostname = bench.example.org
home = $home
plugins = ["maintenance"]
[postgresql]
host = $work/pg
port = $pgport
user = postgres
dbname = postgres
[logging]
method = stderr
level = WARNING
CONF
done
"$bin" -c "$work/rust.conf" 2>"$work/rust.log" &
rspid=$!
"${as_pg[@]}" env HOME="$work/pyhome" "$venv/bin/temboard-agent" -c "$work/python.conf" 2>"$work/python.log" &
pypid=$!
for p in $port $pyport; do
  for _ in $(seq 1 300); do curl -sk -o /dev/null "https://localhost:$p/discover" && break; sleep 0.2; done
done
psqlc() { "${as_pg[@]}" "$pgbin/psql" -h "$work/pg" -p "$pgport" -U postgres -Atq "$@"; }

echo "machine: $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ), PostgreSQL $(psqlc -c 'SHOW server_version' postgres), commit $(git rev-parse --short HEAD) (release build), Python agent $("$venv/bin/temboard-agent" --version 2>/dev/null | head -n 1)"
echo
echo "| tables | page | Python 9.0.1 | this agent | speed-up | sizes |"
echo "|---|---|---|---|---|---|"
for n in ${TABLES:-1000 10000}; do
  psqlc -c "CREATE DATABASE t$n" postgres
  # In batches of 500 tables a transaction (the lock table's size).
  for start in $(seq 1 500 "$n"); do
    end=$((start + 499)); [ "$end" -gt "$n" ] && end=$n
    psqlc -c "DO \$\$ BEGIN FOR i IN $start..$end LOOP
      EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY, label text)', i);
      EXECUTE format('INSERT INTO t_%s SELECT g, ''row '' || g FROM generate_series(1, 100) g', i);
    END LOOP; END \$\$" "t$n"
  done
  psqlc -c "ANALYZE" "t$n"
  "$venv/bin/python3" scripts/maintenance_vs_python.py "$n" "$port" "$pyport" "$work/server.pem" "$work/ui-private.pem"
  psqlc -c "DROP DATABASE t$n WITH (FORCE)" postgres
done
