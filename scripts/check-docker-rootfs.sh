#!/usr/bin/env bash
# Acceptance for packaging/docker/Dockerfile without a Docker engine: assembles the root
# filesystem of the image's final stage (the release binary and an empty /data, nothing else),
# runs the server in it as the image's non-root user with `unshare --root` and the image's
# environment, checks /healthz and the HEALTHCHECK command, takes a backup as
# `docker exec` would, stops it with SIGTERM as `docker stop` does, and shows that nothing was
# written outside /data.
set -euo pipefail
cd "$(dirname "$0")/.."

# The final stage of packaging/docker/Dockerfile; tests/packaging.rs checks every value here
# against the Dockerfile, so change both together.
build_output=target/x86_64-unknown-linux-gnu/release/jetrack
image_binary=/jetrack
image_data=/data
image_data_mode=700
image_user=65532:65532
image_env=(JETRACK_DATA_DIR=/data JETRACK_LISTEN=0.0.0.0:8420)
image_volume=/data
image_port=8420
image_healthcheck=(/jetrack healthcheck)
image_command=(/jetrack serve)

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
[ -x "$build_output" ] || cargo build --release --quiet
[ "$image_volume" = "$image_data" ] || { echo "FAIL: the volume is not the data dir" >&2; exit 1; }
uid=${image_user%%:*}; gid=${image_user##*:}
[ "$uid" -ne 0 ] || { echo "FAIL: the image runs as root" >&2; exit 1; }

rootfs=$(mktemp -d)
logs=$(mktemp -d)
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  $SUDO rm -rf "$rootfs"; rm -rf "$logs"
}
trap cleanup EXIT
chmod 0755 "$rootfs"
# COPY --from=build /out/jetrack /jetrack
$SUDO install -m 0755 -o 0 -g 0 "$build_output" "$rootfs$image_binary"
# COPY --from=build --chown=… /out/data /data (made with mkdir -m 0700)
$SUDO install -d -m "$image_data_mode" -o "$uid" -g "$gid" "$rootfs$image_data"

# Everything outside /data: path, type, mode, owner, size and modification time.
outside_data() {
  $SUDO find "$rootfs" -path "$rootfs$image_data/*" -prune -o -printf '%P %y %m %U:%G %s %T@\n' \
    | sed "s#^$(basename "$image_data") \(.*\) [0-9.]*\$#$(basename "$image_data") \1#" | sort
}
before=$(outside_data)
echo "image root filesystem (path type mode owner size mtime):"; printf '%s\n' "$before" | sed 's#^#  /#'

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# As `docker run -e JETRACK_LISTEN=0.0.0.0:$port`: the image's environment, on a free port.
env_run=("${image_env[@]}" "JETRACK_LISTEN=0.0.0.0:$port")
in_image() {
  $SUDO env -i "${env_run[@]}" unshare --root="$rootfs" --wd=/ --setgid="$gid" --setuid="$uid" "$@"
}
# Not through in_image: $pid must be the server (or sudo, which passes signals on), not a subshell.
$SUDO env -i "${env_run[@]}" unshare --root="$rootfs" --wd=/ --setgid="$gid" --setuid="$uid" \
  "${image_command[@]}" >"$logs/out" 2>"$logs/err" &
pid=$!
status=""
for _ in $(seq 1 100); do
  status=$(curl -s -o "$logs/body" -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)
  [ "$status" = 200 ] && break
  sleep 0.1
done
fail() { echo "FAIL: $*" >&2; cat "$logs/out" "$logs/err" >&2; exit 1; }
[ "$status" = 200 ] || fail "/healthz answered '$status'"
[ "$(cat "$logs/body")" = '{"status":"ok"}' ] || fail "/healthz body $(cat "$logs/body")"
echo "ok: /healthz answered 200 {\"status\":\"ok\"} on 0.0.0.0:$port"

# The server runs as the image's user, with no supplementary groups.
server_pid=$(awk '{ print $1 }' "/proc/$pid/task/$pid/children" 2>/dev/null || true)
[ -n "$server_pid" ] || server_pid=$pid
ids=$(awk '/^(Uid|Gid|Groups):/ { $1 = $1; print }' "/proc/$server_pid/status" | tr '\n' ' ')
case "$ids" in
  "Uid: $uid $uid $uid $uid Gid: $gid $gid $gid $gid Groups: ") ;;
  *) fail "the server runs with $ids" ;;
esac
echo "ok: the server runs as uid $uid, gid $gid, no supplementary groups"

# Docker's HEALTHCHECK: the binary itself, no shell.
in_image "${image_healthcheck[@]}" || fail "the healthcheck command exited $? against a healthy server"
echo "ok: ${image_healthcheck[*]} exited 0"
# `docker exec jetrack /jetrack backup`: a backup lands in /data/backups.
backup=$(in_image "$image_binary" backup 2>>"$logs/err") || fail "backup inside the image"
case "$backup" in "$image_data"/backups/*) ;; *) fail "backup went to '$backup'" ;; esac
echo "ok: backup inside the image wrote $backup"

kill -TERM "$pid"; code=0; wait "$pid" || code=$?; pid=
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
echo "ok: SIGTERM (docker stop) ended the server with exit 0"
if in_image "${image_healthcheck[@]}" 2>"$logs/hc"; then fail "the healthcheck passed with no server"; fi
echo "ok: ${image_healthcheck[*]} exits 1 once the server is gone: $(cat "$logs/hc")"

after=$(outside_data)
if [ "$before" != "$after" ]; then
  diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") >&2 || true
  fail "something was written outside $image_data"
fi
echo "ok: nothing outside $image_data changed; $image_data now holds:"
$SUDO find "$rootfs$image_data" -mindepth 1 -printf "  $image_data/%P (%U:%G)\n" | sort
[ -f "$rootfs$image_data/jetrack.db" ] || fail "no database in $image_data"
if $SUDO find "$rootfs$image_data" -mindepth 1 ! -user "$uid" | grep -q .; then
  fail "a file in $image_data is not owned by $uid"
fi
