#!/usr/bin/env bash
# The tests' private Python: a virtual environment holding what only the
# tests use (openapi-spec-validator; temboard-agent==9.0.1, the real 9.x
# signing toolkit), created and filled when missing. Never on PATH: pip
# installing temboard-agent into the system Python put a broken
# `temboard-agent` command ahead of the package's.
#
# In $TBA_TEST_VENV (default: /var/cache/temboard-agent-tests/venv as root,
# ~/.cache/temboard-agent-tests/venv otherwise). Prints its python's path.
set -euo pipefail

if [ -n "${TBA_TEST_VENV:-}" ]; then
  venv=$TBA_TEST_VENV
elif [ "$(id -u)" = 0 ]; then
  venv=/var/cache/temboard-agent-tests/venv
else
  venv=${XDG_CACHE_HOME:-$HOME/.cache}/temboard-agent-tests/venv
fi
py=$venv/bin/python3

if [ ! -x "$py" ]; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      echo "==> installing with apt: python3-venv (the tests' private Python)" >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
      echo "test-python: python3-venv is missing: install it (apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
  echo "==> creating the tests' Python environment in $venv" >&2
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" >&2
  chmod -R a+rX "$venv"
fi
if ! "$py" -c 'import openapi_spec_validator, temboardagent.toolkit.signing' >/dev/null 2>&1; then
  echo "==> installing into $venv from PyPI: openapi-spec-validator (validates /openapi.json), temboard-agent==9.0.1 (the real 9.x signing toolkit)" >&2
  "$py" -m pip install --quiet --disable-pip-version-check openapi-spec-validator temboard-agent==9.0.1 >&2
  chmod -R a+rX "$venv"
fi
echo "$py"
