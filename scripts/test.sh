#!/usr/bin/env bash
# Runs every check and test of the project, installing what the tests need when it is missing
# (Debian's chromium and chromium-driver, file, the browser tests' npm packages).
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
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]} from Debian"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

step "cargo build --release (static executable)"
cargo build --release --quiet
packaging/check-static.sh

step "cargo test"
cargo test --quiet 2>&1 | tee target/cargo-test.log
grep -q "test result: ok" target/cargo-test.log

step "browser tests (headless Chromium)"
(cd tests/browser && npm ci --silent --no-audit --no-fund && node --test --test-concurrency=1)

step "tracker script tests (headless Chromium, mock collector)"
(cd tests/tracker && node --test --test-concurrency=1)

echo
echo "All checks passed."
