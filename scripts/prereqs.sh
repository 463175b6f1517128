#!/usr/bin/env bash
# Installs what the demo needs on a fresh Debian machine with Rust, only what
# is missing, and says what before installing it:
#   apt: postgresql (server binaries; Debian's package also starts a cluster
#        of its own on 5432, which the demo and the tests never use),
#        util-linux (runuser), pkg-config and libssl-dev (the openssl crate).
# With --tests, also what only the tests use:
#   apt: python3 (golden config test, helpers), systemd (systemd-analyze
#        verifies the unit), prometheus (promtool lints /metrics; its package
#        starts a server);
#   the tests' private Python (scripts/test-python.sh: openapi-spec-validator,
#        temboard-agent==9.0.1), never on PATH;
#   PostgreSQL 13 to 18 for the cross-version suite (scripts/pg-majors.sh);
#   apt: curl, python3-venv; Patroni with its Raft store in a private
#        virtual environment (scripts/patroni-venv.sh), never on PATH.
# Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=false
[ "${1:-}" = "--tests" ] && tests=true

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
if $tests; then
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  # The system Python's venv module, for the private Patroni.
  { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; } || need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: ${need[*]}; install them (sudo apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  echo "==> installing with apt: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if $tests; then
  bash scripts/test-python.sh >/dev/null
  bash scripts/pg-majors.sh >/dev/null
  bash scripts/patroni-venv.sh >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
