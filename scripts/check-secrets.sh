#!/usr/bin/env bash
# Fails when the repository holds a string shaped like a live secret: a Jetrack API key
# (bj_live_ + 64 hex), a PEM private key, or a token of a service Jetrack talks to (GitHub,
# Slack, Discord webhooks, AWS access keys). Looks at every tracked file and at every commit
# of the history that the clone has. Test fixtures that must look like secrets are listed,
# one exact string per line, in scripts/secret-fixtures.txt; anything else fails.
#
#   scripts/check-secrets.sh [REPO]      (default: this repository)
set -euo pipefail
REPO=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$REPO"
ALLOW="$REPO/scripts/secret-fixtures.txt"

PATTERN='bj_live_[0-9a-f]{64}|-----BEGIN ([A-Z]+ )?PRIVATE KEY-----|gh[pousr]_[A-Za-z0-9]{36}|xox[abposr]-[A-Za-z0-9-]{10,}|hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}|discord(app)?\.com/api/webhooks/[0-9]{5,}/[A-Za-z0-9_-]{30,}|AKIA[0-9A-Z]{16}'

allowed() {
  [ -f "$ALLOW" ] || return 1
  grep -v -e '^#' -e '^$' "$ALLOW" | grep -qxF -- "$1"
}

found=0
report() { # where, match
  if allowed "$2"; then
    return
  fi
  echo "check-secrets: $1: a string shaped like a secret: ${2:0:24}…" >&2
  found=1
}

# The files as they are (tracked, also changed but not committed).
while IFS= read -r -d '' file; do
  [ -f "$file" ] || continue
  while IFS= read -r match; do
    report "$file" "$match"
  done < <(grep -aoE -- "$PATTERN" "$file" 2>/dev/null || true)
done < <(git ls-files -z)

# Every commit the clone has: a secret removed later is still published.
if git rev-parse --verify -q HEAD >/dev/null; then
  while IFS= read -r match; do
    report "history" "$match"
  done < <(git log --all -p --no-color --format= 2>/dev/null | grep -aoE -- "$PATTERN" | sort -u || true)
fi

if [ "$found" -ne 0 ]; then
  echo "check-secrets: FAILED (move real secrets out; list deliberate test fixtures in scripts/secret-fixtures.txt)" >&2
  exit 1
fi
echo "ok: no string shaped like a live secret in $(git ls-files | wc -l) files and $(git rev-list --all --count 2>/dev/null || echo 0) commits"
