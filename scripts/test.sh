#!/usr/bin/env bash
# Runs every check and test of the project, installing what the tests need when it is missing
# (Debian's chromium and chromium-driver, file, the browser tests' npm packages, and the
# packaging checks' systemd, prometheus (promtool), nginx-light, caddy and openssl).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v file >/dev/null 2>&1 || need_apt+=(file)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The packaging checks' tools, without their recommends (prometheus would bring its exporter).
need_tools=()
command -v systemd-analyze >/dev/null 2>&1 || need_tools+=(systemd)
command -v promtool >/dev/null 2>&1 || need_tools+=(prometheus)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_tools+=(nginx-light)
command -v caddy >/dev/null 2>&1 || need_tools+=(caddy)
command -v openssl >/dev/null 2>&1 || need_tools+=(openssl)
command -v strip >/dev/null 2>&1 || need_tools+=(binutils)
command -v curl >/dev/null 2>&1 || need_tools+=(curl)
command -v python3 >/dev/null 2>&1 || need_tools+=(python3)
if [ $((${#need_apt[@]} + ${#need_tools[@]})) -gt 0 ]; then
  step "installing ${need_apt[*]} ${need_tools[*]} from Debian"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  if [ ${#need_apt[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
  if [ ${#need_tools[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${need_tools[@]}" >/dev/null
  fi
fi

step "cargo fmt --check"
cargo fmt --check

step "no secrets in the repository (scripts/check-secrets.sh)"
scripts/check-secrets.sh

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

step "cargo build --release (static executable)"
cargo build --release --quiet
packaging/check-static.sh

step "systemd units: systemd-analyze verify and security (scripts/check-systemd.sh)"
scripts/check-systemd.sh

step "Docker image root filesystem, run without Docker (scripts/check-docker-rootfs.sh)"
scripts/check-docker-rootfs.sh

step "nginx and Caddy configurations (scripts/check-proxies.sh)"
scripts/check-proxies.sh

step "cargo test"
cargo test --quiet 2>&1 | tee target/cargo-test.log
grep -q "test result: ok" target/cargo-test.log

step "release: stripped executable, size, SHA-256, cold start (scripts/release.sh)"
scripts/release.sh

step "restore drill: serve, ingest, backup, restore, same figures (scripts/restore-drill.sh)"
scripts/restore-drill.sh

step "browser tests (headless Chromium)"
(cd tests/browser && npm ci --silent --no-audit --no-fund && node --test --test-concurrency=1)

step "tracker script tests (headless Chromium, mock collector)"
(cd tests/tracker && node --test --test-concurrency=1)

echo
echo "All checks passed."
