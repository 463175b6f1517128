#!/usr/bin/env bash
# Installs Patroni with its Raft store (patroni[raft]: no etcd or Consul
# needed) and psycopg2-binary from PyPI into a private virtual environment
# for tests/patroni.rs, and prints its `patroni` program. Never on PATH:
# /var/cache/temboard-agent-tests/patroni as root (made from the system's
# Python, readable by postgres, which runs it), else under ~/.cache.
set -euo pipefail
if [ "$(id -u)" = 0 ]; then
  venv=${TBA_PATRONI:-/var/cache/temboard-agent-tests/patroni}
else
  venv=${TBA_PATRONI:-${XDG_CACHE_HOME:-$HOME/.cache}/temboard-agent-tests/patroni}
fi
if ! "$venv/bin/patroni" --version >/dev/null 2>&1; then
  echo "==> installing patroni[raft] and psycopg2-binary from PyPI into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python=/usr/bin/python3
  [ -x "$python" ] || python=python3
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'patroni[raft]' psycopg2-binary >&2
  chmod -R a+rX "$venv"
fi
echo "$venv/bin/patroni"
