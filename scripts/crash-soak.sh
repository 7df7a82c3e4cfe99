#!/usr/bin/env bash
# The crash soak (docs/operations.md, "Crash soak"): a server under ingestion load is killed
# with SIGKILL at a random moment, N times, and started again each time. After every kill
# `jetrack check` must pass; at the end every event the server acknowledged must be stored
# exactly once. Each event carries a unique path, /soak/c<cycle>/<worker>/<n>, counted in a
# `jetrack export` of the website. The load (scripts/crash-soak/load.py): tracked pageviews and
# custom events through /api/collect on six keep-alive connections, and imports through
# POST /websites/{id}/events on two, half of them with an Idempotency-Key; keyed imports that
# got no answer are sent again in the next cycle (and must then be stored once), and a few
# acknowledged ones are replayed (and must answer as the first time).
#   scripts/crash-soak.sh [--cycles N] [--bin PATH] [--seed N] [--keep]
#     --cycles N  kills (default 100; `--cycles 3` is a quick smoke run)
#     --bin PATH  the executable to test (default: build the release one)
#     --seed N    the random kill moments and load (default: random, printed)
#     --keep      keep the working directory (kept anyway when something fails)
set -euo pipefail
cd "$(dirname "$0")/.."

cycles=100
bin=
seed=$((RANDOM * 32768 + RANDOM))
keep=0
usage() { sed -n '11,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --cycles) [ $# -ge 2 ] || usage; cycles=$2; shift 2 ;;
    --bin) [ $# -ge 2 ] || usage; bin=$2; shift 2 ;;
    --seed) [ $# -ge 2 ] || usage; seed=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) usage ;;
  esac
done
case $cycles in '' | *[!0-9]* | 0) echo "--cycles: a positive number" >&2; exit 2 ;; esac
case $seed in '' | *[!0-9]*) echo "--seed: a number" >&2; exit 2 ;; esac

if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin=target/x86_64-unknown-linux-gnu/release/jetrack
fi
[ -x "$bin" ] || { echo "no executable at $bin" >&2; exit 2; }
bin=$(realpath "$bin")
load=$(realpath scripts/crash-soak/load.py)

work=$(mktemp -d -t jetrack-crash-soak.XXXXXX)
data=$work/data
state=$work/state
mkdir -p "$state"
pid=
load_pid=
failed=0
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$load_pid" ]; then kill "$load_pid" 2>/dev/null || true; wait "$load_pid" 2>/dev/null || true; fi
  if [ "$keep" = 1 ] || [ "$failed" != 0 ]; then
    echo "kept: $work (server.log, state/, data/)" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
fatal() { failed=1; echo "FAIL: $*" >&2; tail -20 "$work/server.log" >&2 2>/dev/null || true; exit 1; }

# A clean environment: no JETRACK_* of the machine, a HOME of its own.
clean_env=(env -i PATH="$PATH" HOME="$work")
jt() { "${clean_env[@]}" "$bin" --data-dir "$data" "$@"; }
now_ms() { date +%s%3N; }
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

domain=soak.example.com
printf 'crash soak password 1234\n' | jt users add --email soak@example.com --password-stdin \
  >/dev/null 2>"$work/setup.err" || fatal "users add: $(cat "$work/setup.err")"
site=$(jt websites add --email soak@example.com --name Soak --domain "$domain" --timezone UTC \
  2>>"$work/setup.err" | sed -n 's/.*data-website-id="\([^"]*\)".*/\1/p')
[ -n "$site" ] || fatal "websites add: $(cat "$work/setup.err")"
key=$(jt keys create --email soak@example.com --name soak 2>>"$work/setup.err")
[ -n "$key" ] || fatal "keys create: $(cat "$work/setup.err")"
first_day=$(date -u -d yesterday +%F)

serve() { # start a server on a free port; sets $pid, $base and $up_ms
  local t0 port=
  t0=$(now_ms)
  : >"$work/out"
  # Not through jt: $pid must be the server itself, not a subshell, for the signals.
  "${clean_env[@]}" "$bin" --data-dir "$data" serve --listen 127.0.0.1:0 \
    --api-rate-limit 1000000 --api-rate-burst 1000000 >"$work/out" 2>>"$work/server.log" &
  pid=$!
  for _ in $(seq 1 2000); do
    port=$(sed -n 's/^Jetrack is listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/out")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; pid=; fatal "the server exited at start"; }
    sleep 0.01
  done
  [ -n "$port" ] || fatal "the server did not say where it listens within 20 s"
  base=http://127.0.0.1:$port
  up_ms=$(($(now_ms) - t0))
}
load_args() { # CYCLE
  printf '%s\n' --base "$base" --site "$site" --domain "$domain" --key "$key" --cycle "$1" \
    --state "$state"
}

echo "==> crash soak: $cycles cycles, seed $seed, $bin"
echo "    work dir $work"
RANDOM=$seed
start=$(now_ms)
check_failures=0
early_exits=0
up_total=0
up_max=0
check_max=0
wal_max=0
for cycle in $(seq 1 "$cycles"); do
  echo "=== cycle $cycle" >>"$work/server.log"
  serve
  up_total=$((up_total + up_ms))
  [ "$up_ms" -gt "$up_max" ] && up_max=$up_ms
  mapfile -t args < <(load_args "$cycle")
  python3 "$load" run "${args[@]}" --seed "$((seed + cycle))" >"$work/load.out" 2>&1 &
  load_pid=$!
  delay=$((300 + RANDOM % 2701))
  sleep "$(secs "$delay")"
  code=0
  # (wait's stderr: bash's "Killed" notice of the job.)
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || code=$?
  else
    wait "$pid" 2>/dev/null || code=$?
    early_exits=$((early_exits + 1))
    echo "    cycle $cycle: the server exited by itself with $code before the kill" >&2
  fi
  pid=
  if [ "$code" != 137 ]; then
    echo "    cycle $cycle: the server ended with $code, not 137 (SIGKILL)" >&2
  fi
  wal=$(stat -c %s "$data/jetrack.db-wal" 2>/dev/null || echo 0)
  [ "$wal" -gt "$wal_max" ] && wal_max=$wal
  load_code=0
  wait "$load_pid" || load_code=$?
  load_pid=
  [ "$load_code" = 0 ] || fatal "the load generator failed ($load_code): $(cat "$work/load.out")"
  t0=$(now_ms)
  check_ok=ok
  if ! jt check >"$work/check.out" 2>&1; then
    check_ok=FAILED
    check_failures=$((check_failures + 1))
    cat "$work/check.out" >&2
    [ -d "$work/check-failed-$cycle" ] || cp -a "$data" "$work/check-failed-$cycle"
  fi
  check_ms=$(($(now_ms) - t0))
  [ "$check_ms" -gt "$check_max" ] && check_max=$check_ms
  printf 'cycle %d/%d: up in %d ms, killed after %s s (WAL %d MB); %s; check %s (%s s)\n' \
    "$cycle" "$cycles" "$up_ms" "$(secs "$delay")" $((wal / 1048576)) "$(cat "$work/load.out")" \
    "$check_ok" "$(secs "$check_ms")"
done

echo "==> start once more, resend the keyed imports still without an answer, stop (SIGTERM)"
echo "=== settle" >>"$work/server.log"
serve
mapfile -t args < <(load_args $((cycles + 1)))
python3 "$load" settle "${args[@]}" || fatal "the load generator failed while settling"
kill -TERM "$pid"
code=0
wait "$pid" || code=$?
pid=
[ "$code" = 0 ] || { failed=1; echo "FAIL: the server exited $code after SIGTERM" >&2; }
jt check >"$work/check.out" 2>&1 || {
  check_failures=$((check_failures + 1))
  cat "$work/check.out" >&2
}

echo "==> count every marker in an export of the website"
jt export --website "$site" --from "$first_day" --to "$(date -u +%F)" --format ndjson \
  >"$work/export.ndjson" 2>"$work/export.err" || fatal "export: $(cat "$work/export.err")"
elapsed=$(($(now_ms) - start))
verified=0
python3 "$load" verify --state "$state" --export "$work/export.ndjson" || verified=$?
panics=$(grep -c -i 'panicked' "$work/server.log" || true)
errors=$(grep -c -E '\bERROR\b' "$work/server.log" || true)
warnings=$(grep -c -E '\bWARN\b' "$work/server.log" || true)
echo "  cycles:                  $cycles (seed $seed)"
echo "  check failures:          $check_failures"
echo "  exits before the kill:   $early_exits"
echo "  start to listening:      mean $((up_total / cycles)) ms, max $up_max ms"
echo "  slowest check:           $(secs "$check_max") s"
echo "  server log:              $errors ERROR and $warnings WARN lines, $panics panics"
echo "  database:                $(du -sh "$data/jetrack.db" | cut -f1), largest WAL after a kill $((wal_max / 1048576)) MB"
echo "  total time:              $(secs "$elapsed") s"
if [ "$verified" != 0 ] || [ "$check_failures" != 0 ] || [ "$early_exits" != 0 ] \
  || [ "$panics" != 0 ] || [ "$failed" != 0 ]; then
  failed=1
  echo "FAIL: see above" >&2
  exit 1
fi
echo "ok: every acknowledged event is stored exactly once, and check passed after every kill"
