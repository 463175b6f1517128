#!/usr/bin/env bash
# Runs the whole suite N times in a row (default 5) with two CPU hogs
# (`yes >/dev/null`) beside it, as on a busy 2-core machine, and prints one
# line per run: its exit status, duration and counts. The suite must pass
# every time: no timing races, no sleeps as synchronization.
#
#   bash scripts/loaded-runs.sh [N]      # logs in target/loaded-runs/
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
logs=target/loaded-runs
mkdir -p "$logs"
yes >/dev/null &
hog1=$!
yes >/dev/null &
hog2=$!
trap 'kill $hog1 $hog2 2>/dev/null' EXIT
failed=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  CI=1 bash scripts/test.sh >"$logs/run-$i.log" 2>&1
  status=$?
  end=$(date +%s)
  counts=$(grep -E '^test result' "$logs/run-$i.log" | awk '{p+=$4; f+=$6} END {print p" passed, "f" failed"}')
  echo "run $i: exit $status in $((end - start)) s: $counts"
  if [ "$status" -ne 0 ]; then
    failed=$((failed + 1))
    grep -E '^test .* FAILED$' "$logs/run-$i.log" | sed 's/^/  /'
  fi
done
echo "$((runs - failed)) of $runs loaded runs green"
[ "$failed" -eq 0 ]
