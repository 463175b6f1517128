#!/usr/bin/env bash
# Runs every test: unit tests, the golden config test against Python's
# configparser, and the integration tests that start a private PostgreSQL and
# the real agent binary. Installs missing prerequisites first (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh
cargo test --all-targets "$@"
