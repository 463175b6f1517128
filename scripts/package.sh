#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed from crates.io if
# missing) and checks its contents. `--install` also installs it with apt and
# runs the installed binary. `--rpm` builds the RPM instead, with
# cargo-generate-rpm (installed from crates.io if missing), and checks its
# contents, permissions and metadata with `rpm` (Debian's package will do).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--rpm" ]; then
  command -v cargo-generate-rpm >/dev/null 2>&1 || cargo install --locked cargo-generate-rpm
  command -v rpm >/dev/null 2>&1 || { echo "rpm is needed to check the package: apt-get install rpm" >&2; exit 1; }
  cargo build --release --quiet --bins
  rm -f target/generate-rpm/*.rpm
  cargo generate-rpm >/dev/null
  rpmfile=$(ls target/generate-rpm/*.rpm)
  echo "package: $rpmfile ($(stat -c %s "$rpmfile") bytes)"
  # Contents and permissions: path, mode, owner, group of every file.
  dump=$(rpm -qp --dump "$rpmfile" 2>/dev/null | awk '{print $1, $5, $6, $7}')
  check() { # path, mode
    grep -q "^$1 $2 root root\$" <<<"$dump" || { echo "missing or wrong in the RPM: $1 (want mode $2, root:root); has: $(grep "^$1 " <<<"$dump")" >&2; exit 1; }
  }
  for b in temboard-agent temboard-agent-adduser temboard-agent-password temboard-agent-register temboard-agent-token; do
    check "/usr/bin/$b" 0100755
  done
  check /usr/lib/systemd/system/temboard-agent@.service 0100644
  check /usr/share/temboard-agent/temboard-agent.conf.sample 0100644
  check /usr/share/doc/temboard-agent/README.md 0100644
  check /usr/share/doc/temboard-agent/configuration.md 0100644
  check /usr/share/doc/temboard-agent/examples/50-temboard-agent.rules 0100644
  check /usr/share/temboard-agent/grafana/temboard-agent.json 0100644
  check /usr/share/temboard-agent/prometheus/temboard-agent.rules.yml 0100644
  check /usr/share/temboard-agent/prometheus/temboard-agent.rules.test.yml 0100644
  # Nothing writable by others, nothing setuid.
  if python3 -c 'import sys; sys.exit(any(int(l.split()[1], 8) & 0o6002 for l in sys.stdin if l.strip()))' <<<"$dump"; then :; else
    echo "world-writable, setuid or setgid file in the RPM" >&2; exit 1
  fi
  echo "contents and permissions: ok ($(wc -l <<<"$dump") files)"
  info=$(rpm -qip "$rpmfile" 2>/dev/null)
  for field in "Name *: temboard-agent" "Version *: $(awk -F'"' '/^version/ {print $2; exit}' Cargo.toml)" "License *: PostgreSQL" "Summary *: temBoard agent"; do
    grep -Eq "^$field" <<<"$info" || { echo "RPM metadata: no '$field' in:" >&2; echo "$info" >&2; exit 1; }
  done
  echo "metadata: ok"
  rpm -qp --requires "$rpmfile" 2>/dev/null | sed 's/^/  requires: /'
  exit 0
fi
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
deb=$(cargo deb 2>/dev/null | tail -n 1)
[ -f "$deb" ] || { echo "cargo deb did not produce a package" >&2; exit 1; }
echo "package: $deb ($(stat -c %s "$deb") bytes)"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/temboard-agent ./usr/bin/temboard-agent-adduser ./usr/bin/temboard-agent-password \
         ./usr/bin/temboard-agent-register ./usr/bin/temboard-agent-token \
         ./lib/systemd/system/temboard-agent@.service ./usr/share/temboard-agent/temboard-agent.conf.sample \
         ./usr/share/doc/temboard-agent/README.md ./usr/share/doc/temboard-agent/configuration.md \
         ./usr/share/doc/temboard-agent/examples/50-temboard-agent.rules \
         ./usr/share/temboard-agent/grafana/temboard-agent.json \
         ./usr/share/temboard-agent/prometheus/temboard-agent.rules.yml \
         ./usr/share/temboard-agent/prometheus/temboard-agent.rules.test.yml; do
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
