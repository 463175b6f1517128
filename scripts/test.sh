#!/usr/bin/env bash
# Runs every test: unit tests, the golden config test against Python's
# configparser, and the integration tests that start a private PostgreSQL and
# the real agent binary. Installs missing prerequisites first (as root).
# Every test binary runs even when one fails; the failures are listed at the
# end, and the exit status is cargo's.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh --tests || exit 1
# The structure first: no circle of files, plugins through the API only.
python3 scripts/import-graph.py || exit 1
log=$(mktemp /tmp/tba-test.XXXXXX)
trap 'rm -f "$log"' EXIT
cargo test --all-targets --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo
if [ "$status" -eq 0 ]; then
  echo "summary: every test binary passed"
else
  echo "summary: failures"
  grep -E '^test .* FAILED$|^error: test failed|^error: [0-9]+ targets? failed' "$log" | sed 's/^/  /'
fi
exit "$status"
