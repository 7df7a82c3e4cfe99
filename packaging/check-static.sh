#!/usr/bin/env bash
# Shows that the release build is one static executable that needs nothing from the machine:
# `file` reports it static, and it serves /healthz from an otherwise empty root directory
# holding only itself and a writable data directory.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/x86_64-unknown-linux-gnu/release/jetrack
[ -x "$bin" ] || cargo build --release --quiet

kind=$(file -b "$bin")
echo "file: $kind"
case "$kind" in
  *"statically linked"*|*"static-pie linked"*) ;;
  *) echo "FAIL: $bin is not statically linked" >&2; exit 1 ;;
esac
if ldd "$bin" >/dev/null 2>&1 && ! ldd "$bin" 2>&1 | grep -q "statically linked"; then
  echo "FAIL: ldd lists shared libraries for $bin" >&2; ldd "$bin" >&2; exit 1
fi

root=$(mktemp -d)
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$root"; }
trap cleanup EXIT
cp "$bin" "$root/jetrack"
mkdir "$root/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

echo "empty root: $(cd "$root" && find . | sort | tr '\n' ' ')"
env -i unshare --root="$root" /jetrack --data-dir /data serve --listen "127.0.0.1:$port" \
  >"$root.out" 2>"$root.err" &
pid=$!
for _ in $(seq 1 100); do
  if status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz"); then
    [ "$status" = 200 ] && break
  fi
  sleep 0.1
done
body=$(curl -s "http://127.0.0.1:$port/healthz" || true)
kill -TERM "$pid"; wait "$pid"; code=$?; pid=
if [ "$body" != '{"status":"ok"}' ]; then
  echo "FAIL: /healthz from the empty root answered '$body'" >&2
  cat "$root.out" "$root.err" >&2; rm -f "$root.out" "$root.err"; exit 1
fi
rm -f "$root.out" "$root.err"
[ "$code" = 0 ] || { echo "FAIL: exit code $code after SIGTERM" >&2; exit 1; }
[ -f "$root/data/jetrack.db" ] || { echo "FAIL: no database in the data dir" >&2; exit 1; }
echo "ok: static executable ($(du -h "$bin" | cut -f1)) served /healthz from an empty root and exited 0"
