#!/usr/bin/env bash
# The maintenance plugin's figures (issue #20), on a PostgreSQL and an agent
# of its own (release build):
#  - the database page (GET /maintenance/<db>, signed) and the schema page
#    of a database of 100, 1,000 and 10,000 tables (each with a primary key,
#    a text column and 100 analyzed rows): first request and median of 5;
#  - GET /status and signed GET /activity latency (p50/p99 of sequential
#    requests) idle, then while a VACUUM FULL scheduled through the API
#    runs on a large table (the task worker, its own connection).
#
#   bash scripts/maintenance_bench.sh
#   TABLES="100 1000" ROWS=1000000 bash scripts/maintenance_bench.sh   (quick run)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh --tests >/dev/null
# The real temBoard toolkit signs requests: the tests' private Python.
tpy=$(bash scripts/test-python.sh)
cargo build --release --quiet --bins
bin=$PWD/target/release/temboard-agent

work=$(mktemp -d /tmp/tba-maint.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/home" "$work/pg"
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres: "$work/home" "$work/pg"; as_pg=(runuser -u postgres --); fi
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pgport=$(free_port)
port=$(free_port)
agentpid=
cleanup() {
  [ -n "$agentpid" ] && { kill -TERM "$agentpid" 2>/dev/null || true; wait "$agentpid" 2>/dev/null || true; }
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
plugins = ["activity", "administration", "maintenance"]
[postgresql]
host = $work/pg
port = $pgport
[logging]
method = file
destination = $work/agent.log
level = WARNING
CONF
"$bin" -c "$work/agent.conf" >/dev/null 2>&1 &
agentpid=$!
psqlc() { "${as_pg[@]}" "$pgbin/psql" -h "$work/pg" -p "$pgport" -U postgres -Atq "$@"; }

echo "machine: $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)"
for n in ${TABLES:-100 1000 10000}; do
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
done
psqlc -c "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS label FROM generate_series(1, ${ROWS:-3000000}) g; CREATE INDEX ON big (id); CREATE INDEX ON big (label); ANALYZE big" postgres

"$tpy" scripts/maintenance_cost.py "$port" "$work/server.pem" "$work/ui-private.pem" ${TABLES:-100 1000 10000}
