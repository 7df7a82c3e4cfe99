#!/usr/bin/env bash
# The restore drill (packaging/README.md): with the release binary, serve, ingest (tracked
# pageviews through /api/collect and an import through the API), take a backup while the server
# runs, stop it, restore the backup into a new data directory, serve that, and check that the
# statistics API answers exactly as before (main figures, timeseries and breakdowns).
#   scripts/restore-drill.sh [PATH-TO-JETRACK]
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/x86_64-unknown-linux-gnu/release/jetrack}
[ -x "$bin" ] || cargo build --release --quiet
bin=$(realpath "$bin")
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$work/err" ] && tail -20 "$work/err" >&2; exit 1; }
# A clean environment: no JETRACK_* of the machine, a HOME of its own.
clean_env=(env -i PATH="$PATH" HOME="$work")
jt() { "${clean_env[@]}" "$bin" "$@"; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

serve() { # DATA_DIR: start a server and wait for /healthz
  # Not through jt: $pid must be the server itself, not a subshell, for the SIGTERM.
  "${clean_env[@]}" "$bin" --data-dir "$1" serve --listen "127.0.0.1:$port" >"$work/out" 2>"$work/err" &
  pid=$!
  for _ in $(seq 1 200); do
    curl -sf -o /dev/null "$base/healthz" && return 0
    sleep 0.05
  done
  fail "the server on $1 did not come up"
}
stop() {
  kill -TERM "$pid"; local code=0; wait "$pid" || code=$?; pid=
  [ "$code" = 0 ] || fail "the server exited $code after SIGTERM"
}
api() { # METHOD PATH [BODY]
  curl -sS -X "$1" "$base/api/v1$2" -H "X-API-Key: $key" -H "Content-Type: application/json" \
    ${3:+--data "$3"}
}
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

echo "==> serve on a fresh data dir, ingest"
printf 'drill password 1234\n' | jt --data-dir "$work/live" users add --email drill@example.com \
  --password-stdin >/dev/null 2>&1 || fail "users add"
key=$(jt --data-dir "$work/live" keys create --email drill@example.com --name drill 2>/dev/null)
serve "$work/live"
site=$(api POST /websites '{"name": "Drill", "domain": "shop.example.com"}' | field '["data"]["id"]')
ua="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
for i in 1 2 3 4 5 6; do
  for path in / /pricing; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/collect" -H "Content-Type: text/plain" \
      -H "User-Agent: $ua" -H "X-Forwarded-For: 203.0.113.$i" \
      --data "{\"type\":\"pageview\",\"websiteId\":\"$site\",\"url\":\"https://shop.example.com$path?utm_source=drill\",\"referrer\":\"https://news.example.org/\"}")
    [ "$code" = 202 ] || fail "collect answered $code"
  done
done
events='['
for day in 10 11 12 13 14 15; do
  for v in a b c; do
    events+="{\"type\":\"pageview\",\"url\":\"https://shop.example.com/docs/$v\",\"timestamp\":\"2025-01-${day}T09:00:00.000Z\",\"visitorId\":\"$v$day\",\"country\":\"DE\",\"browser\":\"Firefox\"},"
    events+="{\"type\":\"event\",\"name\":\"Signup\",\"props\":{\"plan\":\"pro\"},\"url\":\"https://shop.example.com/signup\",\"timestamp\":\"2025-01-${day}T09:05:00.000Z\",\"visitorId\":\"$v$day\"},"
  done
done
events="${events%,}]"
accepted=$(api POST "/websites/$site/events" "{\"events\": $events}" | field '["data"]["accepted"]')
[ "$accepted" = 36 ] || fail "the import accepted $accepted of 36 events"
echo "ok: 12 tracked pageviews and 36 imported events"

today=$(date -u +%F)
queries=(
  "stats/main?from=2025-01-01&to=$today"
  "stats/timeseries?from=2025-01-01&to=2025-01-31&interval=day"
  "stats/pages?from=2025-01-01&to=$today"
  "stats/referrers?from=2025-01-01&to=$today"
  "stats/countries?from=2025-01-01&to=$today"
  "stats/events?from=2025-01-01&to=$today"
  "stats/main?from=2025-01-01&to=$today&path=/pricing"
)
answers() {
  for q in "${queries[@]}"; do
    printf '%s ' "$q"; api GET "/websites/$site/$q"; echo
  done
}
before=$(answers)
resp=$(api GET "/websites/$site/stats/main?from=2025-01-01&to=$today")
pageviews=$(printf %s "$resp" | field '["data"]["totalPageviews"]' 2>/dev/null) || fail "stats/main answered $resp"
[ "$pageviews" = 30 ] || fail "main reports $pageviews pageviews, not 30: $before"

echo "==> backup while serving, stop"
backup=$(jt --data-dir "$work/live" backup) || fail "backup"
echo "backup: $backup ($(stat -c %s "$backup") bytes)"
stop

echo "==> restore into a new data dir, serve it"
jt --data-dir "$work/restored" restore "$backup" >/dev/null || fail "restore"
jt --data-dir "$work/restored" check >/dev/null || fail "check on the restored database"
serve "$work/restored"
after=$(answers)
stop
if [ "$before" != "$after" ]; then
  diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") >&2 || true
  fail "the restored server answers differently"
fi
printf '%s\n' "$after" | sed -n '1p' | cut -c1-300
echo "ok: the restored server gives the same ${#queries[@]} statistics answers ($pageviews pageviews since 2025-01-01)"
