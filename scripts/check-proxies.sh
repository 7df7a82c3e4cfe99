#!/usr/bin/env bash
# Validates packaging/nginx/jetrack.conf with `nginx -t` (against a throwaway self-signed
# certificate) and packaging/caddy/Caddyfile with `caddy validate`, offline. Installs Debian's
# nginx-light and caddy when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v caddy >/dev/null 2>&1 || need_apt+=(caddy)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} from Debian"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=stats.example.com \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
sed -e "s#/etc/letsencrypt/live/stats.example.com/fullchain.pem#$work/cert.pem#" \
    -e "s#/etc/letsencrypt/live/stats.example.com/privkey.pem#$work/key.pem#" \
    packaging/nginx/jetrack.conf >"$work/jetrack.conf"
cat >"$work/nginx.conf" <<CONF
pid $work/nginx.pid;
error_log stderr;
events {}
http {
    access_log off;
    include $work/jetrack.conf;
}
CONF
if ! out=$("$nginx" -t -q -c "$work/nginx.conf" -e stderr 2>&1) || [ -n "$out" ]; then
  printf '%s\n' "$out" >&2
  echo "FAIL: nginx -t on packaging/nginx/jetrack.conf" >&2
  exit 1
fi
echo "ok: nginx -t accepts packaging/nginx/jetrack.conf ($("$nginx" -v 2>&1))"

# caddy writes its state under XDG_DATA_HOME / XDG_CONFIG_HOME: keep it in the temporary dir.
if ! out=$(HOME="$work" XDG_DATA_HOME="$work" XDG_CONFIG_HOME="$work" \
    caddy validate --config packaging/caddy/Caddyfile --adapter caddyfile 2>&1); then
  printf '%s\n' "$out" >&2
  echo "FAIL: caddy validate on packaging/caddy/Caddyfile" >&2
  exit 1
fi
if printf '%s\n' "$out" | grep -q '"level":"\(warn\|error\)"'; then
  printf '%s\n' "$out" >&2
  echo "FAIL: caddy warns about packaging/caddy/Caddyfile" >&2
  exit 1
fi
echo "ok: caddy validate accepts packaging/caddy/Caddyfile ($(caddy version | cut -d' ' -f1))"
