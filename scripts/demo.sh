#!/usr/bin/env bash
# One-command demo: a throwaway PostgreSQL cluster, a generated self-signed
# certificate, a demo user, and the agent in the foreground. Ctrl-C stops both
# and removes everything.
#
#   bash scripts/demo.sh            (PORT=2345 by default, or the next free one)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/prereqs.sh"
pgbin=${PGBIN:-}
if [ -z "$pgbin" ]; then
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && pgbin=$d; done
fi
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
  echo "PostgreSQL server binaries not found: apt-get install -y postgresql (or set PGBIN)" >&2
  exit 1
fi

# Every binary: the README's tools (temboard-agent-token, -adduser, ...) work
# against the demo too. The first build compiles ~250 crates: about 2 minutes
# on 2 cores (cargo shows its progress); later runs take seconds.
echo "==> building the agent and its tools (first build: about 2 minutes on 2 cores)"
(cd "$here" && cargo build --bins)
bin="$here/target/debug"
agent="$bin/temboard-agent"

free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
port=$(free_port "${PORT:-2345}")
pgport=$(free_port 55432)

demo=$(mktemp -d /tmp/temboard-demo.XXXXXX)
chmod 755 "$demo"
mkdir -p "$demo/pg" "$demo/home" "$demo/etc"
as_pg=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root: run it, and the workers, as postgres.
  chown postgres: "$demo/pg" "$demo/home"
  as_pg=(runuser -u postgres --)
fi
pgpid=""
agentpid=""
cleanup() {
  echo >&2
  if [ -n "$agentpid" ]; then
    echo "==> stopping the agent" >&2
    kill "$agentpid" 2>/dev/null && wait "$agentpid" 2>/dev/null || true
  fi
  if [ -n "$pgpid" ]; then
    echo "==> stopping PostgreSQL" >&2
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$demo/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$demo"
  echo "==> removed $demo: nothing of the demo is left" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> creating a throwaway PostgreSQL cluster in $demo/pg"
"${as_pg[@]}" "$pgbin/initdb" -D "$demo/pg/data" -U postgres -A trust >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$demo/pg/data" -l "$demo/pg/postgresql.log" -w \
  -o "-p $pgport -k $demo/pg -c listen_addresses=''" start >/dev/null
pgpid=started

echo "==> generating a self-signed certificate and a demo user"
"$agent" generate-cert --hostname localhost --hostname 127.0.0.1 \
  --cert "$demo/etc/server.pem" --key "$demo/etc/server.key" >/dev/null
password=$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9' | head -c 12)
"$agent" hash-password "demo:$password" > "$demo/etc/users"
# Readable by the workers only: root:postgres 0640 when the workers switch
# to postgres, the owner's alone otherwise.
if [ "$(id -u)" = 0 ]; then
  chgrp postgres "$demo/etc/users"
  chmod 640 "$demo/etc/users"
else
  chmod 600 "$demo/etc/users"
fi

cat > "$demo/etc/temboard-agent.conf" <<CONF
[temboard]
port = $port
address = 127.0.0.1
users = users
ssl_cert_file = server.pem
ssl_key_file = server.key
home = $demo/home
hostname = localhost.localdomain

[postgresql]
host = $demo/pg
port = $pgport
user = postgres
dbname = postgres

[logging]
method = stderr
level = INFO

[administration]
pg_ctl = '$pgbin/pg_ctl %s -D $demo/pg/data -w -o "-p $pgport -k $demo/pg"'
CONF

cat <<MSG

  temBoard agent demo
  -------------------
  API:          https://127.0.0.1:$port/   (self-signed certificate: use curl -k)
  try:          curl -k https://127.0.0.1:$port/health
                curl -k https://127.0.0.1:$port/discover
                curl -k https://127.0.0.1:$port/login -d '{"username": "demo", "password": "$password"}'
                curl -k -H "X-Session: <session>" https://127.0.0.1:$port/dashboard
                https://127.0.0.1:$port/docs lists every route
  user:         demo
  password:     $password
  config:       $demo/etc/temboard-agent.conf
  PostgreSQL:   psql -h $demo/pg -p $pgport -U postgres
  tools:        $bin/temboard-agent-token -c $demo/etc/temboard-agent.conf create grafana --read-only
                $bin/temboard-agent-adduser -c $demo/etc/temboard-agent.conf
                ($bin holds temboard-agent and every temboard-agent-* tool)
  note:         a wrong user or password answers 404 "Invalid username/password."
                (the 2.x contract), not 401

  Ctrl-C stops the agent and PostgreSQL and removes $demo.

MSG
"$agent" --config "$demo/etc/temboard-agent.conf" &
agentpid=$!
wait "$agentpid"
