#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for SECONDS each (default 30), one
# after the other: total time is one build plus 5 x SECONDS. See docs/fuzzing.md.
#
#   bash scripts/fuzz.sh                 30 s per target
#   bash scripts/fuzz.sh 300             5 min per target
#   FUZZ_OPTIONAL=1 bash scripts/fuzz.sh skip (exit 0) when no nightly toolchain
#   TARGETS="hba_roundtrip ipc_frame" bash scripts/fuzz.sh 60
#
# Needs a nightly toolchain (cargo-fuzz uses -Z sanitizer flags); installs
# cargo-fuzz when missing. Exits non-zero when a target finds a crash, leak,
# timeout or out-of-memory input, and prints the path of the saved input.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS]   (SECONDS per target, a positive integer)" >&2
  exit 2
fi
all_targets=(ipc_frame config_ini users_file hba_roundtrip setting_units)
read -r -a targets <<<"${TARGETS:-${all_targets[*]}}"

# Largest input libFuzzer generates, per target: big enough for several IPC
# frames or a realistic configuration file, small enough to stay fast.
max_len() {
  case "$1" in
    ipc_frame) echo 65536 ;;
    setting_units) echo 4096 ;;
    *) echo 16384 ;;
  esac
}

if ! cargo +nightly --version >/dev/null 2>&1; then
  cat >&2 <<'EOF'
fuzz: `cargo +nightly` does not work: cargo-fuzz needs a nightly toolchain.
      Install one with:  rustup toolchain install nightly --profile minimal
EOF
  if [ "${FUZZ_OPTIONAL:-0}" = 1 ]; then
    echo "fuzz: skipped (FUZZ_OPTIONAL=1)"
    exit 0
  fi
  exit 1
fi
echo "==> $(cargo +nightly --version)"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
echo "==> $(cargo +nightly fuzz --version)"

echo "==> building the fuzz targets"
start=$(date +%s)
cargo +nightly fuzz build
echo "==> build took $(( $(date +%s) - start )) s"
# The targets run from this build: `cargo fuzz run` would rebuild whenever a
# source file changed meanwhile, and the total time would no longer be known.
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="fuzz/target/$triple/release"
# What `cargo fuzz run` sets for AddressSanitizer builds.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

# Seed inputs (committed, small) join the working corpus (not committed).
mkdir -p fuzz/target/fuzz-logs
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  if [ -d "fuzz/seeds/$t" ]; then
    cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
  fi
done

declare -A runs result
failed=0
for t in "${targets[@]}"; do
  # Not in the artifacts directory, where cargo-fuzz looks for new inputs.
  log="fuzz/target/fuzz-logs/$t.log"
  args=(
    -max_total_time="$seconds"
    -rss_limit_mb=2048
    -max_len="$(max_len "$t")"
    -timeout=10
    -print_final_stats=1
  )
  if [ -f "fuzz/dicts/$t.dict" ]; then
    args+=(-dict="fuzz/dicts/$t.dict")
  fi
  echo "==> fuzzing $t for ${seconds}s (log: $log)"
  set +e
  "$bin_dir/$t" -artifact_prefix="fuzz/artifacts/$t/" "${args[@]}" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if [ -z "$n" ]; then
    n=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
  fi
  runs[$t]=${n:-?}
  if [ "$rc" = 0 ]; then
    result[$t]=ok
  else
    failed=1
    artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | sed 's/.* written to //' | tail -n 1)
    if grep -q 'panicked at' "$log"; then
      kind=panic
    else
      kind=$(grep -oE 'ERROR: libFuzzer: [a-z-]+' "$log" | head -n 1 | sed 's/.*: //')
    fi
    result[$t]="FAILED (${kind:-exit $rc}) ${artifact:-no artifact, see $log}"
    echo "---- $t failed; excerpt of $log ----"
    grep -m 1 -A 12 -E 'panicked at|ERROR: libFuzzer|^==[0-9]+==ERROR' "$log" | cut -c 1-400 || tail -n 20 "$log"
    echo "----"
  fi
done

echo
printf '%-16s %14s  %s\n' target runs result
printf '%-16s %14s  %s\n' ------ ---- ------
for t in "${targets[@]}"; do
  printf '%-16s %14s  %s\n' "$t" "${runs[$t]}" "${result[$t]}"
done
if [ "$failed" != 0 ]; then
  echo
  echo "Reproduce with: cargo +nightly fuzz run <target> <artifact>  (see docs/fuzzing.md)"
  exit 1
fi
