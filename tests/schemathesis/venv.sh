#!/usr/bin/env bash
# Makes, once, the Python virtual environment that the OpenAPI checks use (the OpenAPI 3.1
# validator and Schemathesis, pinned), and prints its path. Safe to call from several
# processes at once: the first one installs, the others wait for it.
#
#   tests/schemathesis/venv.sh [DIR]      (default: target/py-venv)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${1:-${JETRACK_PY_VENV:-$ROOT/target/py-venv}}
PINS="openapi-spec-validator==0.9.0 schemathesis==4.32.5"

command -v python3 >/dev/null 2>&1 || { echo "venv.sh: python3 is not installed" >&2; exit 3; }
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if [ "$(cat "$VENV/.jetrack-pins" 2>/dev/null)" != "$PINS" ]; then
  echo "venv.sh: installing $PINS into $VENV (once)" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install --quiet $PINS >&2
  echo "$PINS" >"$VENV/.jetrack-pins"
fi
echo "$VENV"
