#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed from crates.io if
# missing) and checks its contents. `--install` also installs it with apt and
# runs the installed binary.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
deb=$(cargo deb 2>/dev/null | tail -n 1)
[ -f "$deb" ] || { echo "cargo deb did not produce a package" >&2; exit 1; }
echo "package: $deb ($(stat -c %s "$deb") bytes)"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/temboard-agent ./usr/bin/temboard-agent-adduser ./usr/bin/temboard-agent-password \
         ./usr/bin/temboard-agent-register ./usr/bin/temboard-agent-token \
         ./lib/systemd/system/temboard-agent@.service ./usr/share/temboard-agent/temboard-agent.conf.sample \
         ./usr/share/doc/temboard-agent/README.md ./usr/share/doc/temboard-agent/configuration.md \
         ./usr/share/doc/temboard-agent/examples/50-temboard-agent.rules; do
  grep -q " $f\$" <<<"$contents" || { echo "missing in the package: $f" >&2; exit 1; }
done
echo "contents: ok ($(wc -l <<<"$contents") entries)"
dpkg-deb -f "$deb" Package Version Depends
if [ "${1:-}" = "--install" ]; then
  apt-get install -y -qq "$(realpath "$deb")" >/dev/null
  /usr/bin/temboard-agent --version
  /usr/bin/temboard-agent-password alice:alice >/dev/null
  # The installed unit must verify cleanly (it names the installed binary).
  if ! out=$(systemd-analyze verify /lib/systemd/system/temboard-agent@.service 2>&1) || [ -n "$out" ]; then
    echo "systemd-analyze verify failed:" >&2
    echo "$out" >&2
    apt-get remove -y -qq temboard-agent >/dev/null
    exit 1
  fi
  echo "unit verified: ok"
  apt-get remove -y -qq temboard-agent >/dev/null
  echo "installed, ran and removed: ok"
fi
