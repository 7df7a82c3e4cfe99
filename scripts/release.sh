#!/usr/bin/env bash
# Builds the release: the static executable (glibc static-pie, .cargo/config.toml), stripped
# into target/release-dist/jetrack, with its size and SHA-256; fails when it is over 20 MB.
# Then measures the cold start (benches/coldstart.rs: median of 20 starts on an existing
# database to the first 200 from /healthz; target under 200 ms, printed, not enforced).
#   scripts/release.sh [--no-bench]
set -euo pipefail
cd "$(dirname "$0")/.."

max_bytes=20000000
target=x86_64-unknown-linux-gnu
built=target/$target/release/jetrack
dist=target/release-dist
bench=yes
[ "${1:-}" = "--no-bench" ] && bench=no

echo "==> cargo build --release --target $target"
cargo build --release --quiet --target "$target"
kind=$(file -b "$built" 2>/dev/null || echo unknown)
case "$kind" in
  *"statically linked"*|*"static-pie linked"*) ;;
  *) echo "FAIL: $built is not statically linked: $kind" >&2; exit 1 ;;
esac

mkdir -p "$dist"
strip=$(command -v strip || true)
if [ -n "$strip" ]; then
  "$strip" --strip-all -o "$dist/jetrack.new" "$built"
else
  cp "$built" "$dist/jetrack.new"
fi
mv "$dist/jetrack.new" "$dist/jetrack"
(cd "$dist" && sha256sum jetrack >jetrack.sha256)

size=$(stat -c %s "$dist/jetrack")
version=$("$dist/jetrack" --version)
echo "$version"
echo "file:   $dist/jetrack ($kind)"
echo "size:   $size bytes ($(awk -v b="$size" 'BEGIN { printf "%.1f MB", b / 1e6 }'); limit 20 MB)"
echo "sha256: $(cut -d' ' -f1 "$dist/jetrack.sha256")"
if [ "$size" -gt "$max_bytes" ]; then
  echo "FAIL: the executable is over 20 MB" >&2
  exit 1
fi

if [ "$bench" = yes ]; then
  echo "==> cold start of $dist/jetrack (benches/coldstart.rs)"
  # The benchmark only drives the release binary, so its own debug build is enough.
  cargo test --quiet --bench coldstart -- --starts 20 --server-bin "$dist/jetrack"
fi
