#!/usr/bin/env bash
# Fuzzes the whole API with Schemathesis, driven by the server's own OpenAPI document.
#
# Starts the jetrack executable on a free port with its own data dir and raised limits,
# creates the first account through the setup link, a full API key through the session and
# two websites, then runs `schemathesis run` twice against /api/v1/openapi.json: with the key
# (X-API-Key) and without any credential. Checks: not_a_server_error, status_code_conformance,
# content_type_conformance, response_schema_conformance, and with the key also
# positive_data_acceptance and negative_data_rejection. Then every protected operation must
# answer 401 without a credential or with an unknown key (prepare.py auth).
#
# Environment:
#   JETRACK_BIN                the executable (default: the debug build of cargo test)
#   JETRACK_PY_VENV            the Python venv (default: target/py-venv, made by venv.sh)
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 30)
#   SCHEMATHESIS_SEED          a seed, to replay a run (default: random, printed)
#   SCHEMATHESIS_EXTRA         more options for both runs, e.g. "--workers 2"
# Exit 0 when every check passed; 1 on a failure; 3 when python3 is missing.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${JETRACK_BIN:-$ROOT/target/x86_64-unknown-linux-gnu/debug/jetrack}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-30}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
# With a key, the document must be as strict as the server: what it allows is accepted, what it
# forbids is refused. Without a credential every protected operation answers 401 instead.
STRICT=$CHECKS,positive_data_acceptance,negative_data_rejection

command -v python3 >/dev/null 2>&1 || { echo "run.sh: python3 is not installed" >&2; exit 3; }
[ -x "$BIN" ] || { echo "run.sh: no executable at $BIN (run cargo build first)" >&2; exit 1; }
VENV=$("$HERE/venv.sh" "${JETRACK_PY_VENV:-$ROOT/target/py-venv}")
PY="$VENV/bin/python"
ST="$VENV/bin/schemathesis"

WORK=$(mktemp -d)
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# A clean environment for the server: no JETRACK_* of the caller, its own HOME.
mkdir -p "$WORK/home"
for v in $(env | grep -o '^JETRACK_[A-Z_]*' || true); do unset "$v"; done
HOME="$WORK/home" "$BIN" --data-dir "$WORK/data" serve --listen 127.0.0.1:0 \
  --api-rate-limit 100000 --api-rate-burst 100000 --auth-fail-limit 100000 \
  >"$WORK/stdout" 2>"$WORK/stderr" &
PID=$!

BASE=""
for _ in $(seq 1 300); do
  BASE=$(grep -o 'listening on http://[0-9.:]*' "$WORK/stderr" | head -n1 | sed 's/^listening on //' || true)
  [ -n "$BASE" ] && break
  kill -0 "$PID" 2>/dev/null || { echo "run.sh: jetrack exited early:" >&2; cat "$WORK/stderr" >&2; exit 1; }
  sleep 0.1
done
[ -n "$BASE" ] || { echo "run.sh: jetrack did not start:" >&2; cat "$WORK/stderr" >&2; exit 1; }
sleep 0.1
TOKEN=$(grep -o '/setup?token=[0-9a-f]*' "$WORK/stdout" | head -n1 | sed 's/.*token=//')
[ -n "$TOKEN" ] || { echo "run.sh: no setup link printed" >&2; exit 1; }
echo "run.sh: jetrack at $BASE"

KEY=$("$PY" "$HERE/prepare.py" setup "$BASE" "$TOKEN")

SEED_ARGS=()
[ -n "${SCHEMATHESIS_SEED:-}" ] && SEED_ARGS=(--seed "$SCHEMATHESIS_SEED")
# shellcheck disable=SC2206
EXTRA=(${SCHEMATHESIS_EXTRA:-})

run_schemathesis() {
  local label=$1 checks=$2
  shift 2
  echo
  echo "run.sh: schemathesis run ($label)"
  # Run in the scratch folder so nothing (reports, example database) lands in the work tree.
  local config=()
  [[ $checks == *positive_data_acceptance* ]] && config=("${STRICT_CONFIG[@]}")
  (cd "$WORK" && "$ST" "${config[@]}" run "$BASE/api/v1/openapi.json" \
    --checks "$checks" \
    --max-examples "$MAX_EXAMPLES" \
    --generation-database none \
    --request-timeout 30 \
    --no-color \
    "${SEED_ARGS[@]}" "${EXTRA[@]}" "$@")
}

status=0
# The same key in both headers: differing keys are a 400 of their own (tested elsewhere).
run_schemathesis "with an API key" "$CHECKS" -H "X-API-Key: $KEY" -H "Authorization: Bearer $KEY" \
  || status=1
STRICT_CONFIG=(--config-file "$HERE/strict.toml")
run_schemathesis "with an API key, document as strict as the server" "$STRICT" \
  -H "X-API-Key: $KEY" -H "Authorization: Bearer $KEY" || status=1
run_schemathesis "without a credential" "$CHECKS" || status=1

echo
"$PY" "$HERE/prepare.py" auth "$BASE" "$KEY" || status=1

if grep -q -i -E 'panicked|stack backtrace' "$WORK/stderr"; then
  echo "run.sh: the server panicked:" >&2
  grep -i -E -A5 'panicked' "$WORK/stderr" >&2 || true
  status=1
fi
if [ "$status" -eq 0 ]; then
  echo "run.sh: every check passed"
else
  echo "run.sh: FAILED (see above)" >&2
fi
exit "$status"
