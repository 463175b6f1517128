#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian machine with Rust,
# only what is missing, and says what before installing it:
#   apt: postgresql (server binaries), python3 (golden config test), util-linux
#        (runuser), systemd (systemd-analyze verifies the unit), prometheus
#        (promtool lints /metrics), python3-pip when a PyPI package is needed;
#   PyPI: openapi-spec-validator (OpenAPI test), temboard-agent==9.0.1 (the real
#        9.x signing toolkit, for the interoperability test).
# Safe to re-run.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: ${need[*]}; install them (sudo apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  echo "==> installing with apt: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The OpenAPI test validates /openapi.json with openapi-spec-validator (PyPI).
if ! python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
  echo "==> installing openapi-spec-validator from PyPI (validates /openapi.json in the tests)"
  python3 -m pip --version >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && apt-get install -y -qq python3-pip >/dev/null; }
  python3 -m pip install --quiet openapi-spec-validator 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages openapi-spec-validator
fi
# tests/signed.rs signs requests with the real temBoard 9.0.1 toolkit (PyPI
# temboard-agent 9.0.1, which brings bottle and cryptography).
if ! python3 -c 'import temboardagent.toolkit.signing' >/dev/null 2>&1; then
  echo "==> installing temboard-agent==9.0.1 from PyPI (its signing toolkit, for the interoperability test)"
  python3 -m pip install --quiet temboard-agent==9.0.1 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages temboard-agent==9.0.1
fi
# Debian's package starts a cluster of its own; the tests never use it.
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
