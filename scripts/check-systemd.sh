#!/usr/bin/env bash
# Acceptance for packaging/systemd: `systemd-analyze verify` passes on every unit and
# `systemd-analyze security --offline=yes` rates jetrack.service at 2.0 or lower. Runs on a
# temporary root (--root=) holding the units, the release binary at the units' ExecStart path
# and a copy of the machine's own system units (for the targets they name), so nothing is
# installed on the machine. Installs Debian's systemd when systemd-analyze is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

max_exposure=2.0
bin=target/x86_64-unknown-linux-gnu/release/jetrack
units=(jetrack.service jetrack-backup.service jetrack-backup.timer)

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "installing systemd from Debian (for systemd-analyze)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq systemd >/dev/null
fi
[ -x "$bin" ] || cargo build --release --quiet

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
system_units=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
[ -d "$system_units" ] || system_units=/usr/lib/systemd/system
[ -d "$system_units" ] || system_units=/lib/systemd/system
mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system"
cp -r "$system_units" "$root/usr/lib/systemd/system"
for unit in "${units[@]}"; do
  cp "packaging/systemd/$unit" "$root/etc/systemd/system/"
done
# Every ExecStart of the units gets the release binary at its path.
for exec in $(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' packaging/systemd/*.service | sort -u); do
  install -D -m 0755 "$bin" "$root$exec"
  echo "installed the release binary at $exec (in $root)"
done

echo "systemd-analyze verify ${units[*]}"
# verify only warns about an unknown or misspelt setting: any message at all is a failure.
if ! out=$(systemd-analyze verify --root="$root" "${units[@]}" 2>&1) || [ -n "$out" ]; then
  printf '%s\n' "$out" >&2
  echo "FAIL: systemd-analyze verify" >&2
  exit 1
fi
echo "ok: every unit verifies, without a warning"

for service in jetrack.service jetrack-backup.service; do
  report=$(systemd-analyze security --offline=yes --root="$root" "$service" 2>&1) || true
  exposure=$(printf '%s\n' "$report" | sed -n "s/.*Overall exposure level for $service: \([0-9.]*\).*/\1/p")
  if [ -z "$exposure" ]; then
    printf '%s\n' "$report" >&2
    echo "FAIL: systemd-analyze security gave no exposure level for $service" >&2
    exit 1
  fi
  printf '%s\n' "$report" | grep '✗' || true
  if awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e > m) }'; then
    echo "FAIL: $service exposure $exposure is above $max_exposure" >&2
    exit 1
  fi
  echo "ok: $service exposure $exposure (at most $max_exposure)"
done
