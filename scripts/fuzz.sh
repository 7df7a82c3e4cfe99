#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (see "Fuzzing" in docs/operations.md) for MINUTES each
# (default 10), one after the other, and prints per target the executions, executions per
# second, the final coverage (cov/ft) and the crashes. Exits 1 when any target crashed.
#
#   scripts/fuzz.sh [--minimize] [MINUTES] [TARGET...]
#
# Each target starts from its checked-in corpus fuzz/corpus/<target>/ and writes what it finds
# to a scratch corpus outside the repository ($FUZZ_SCRATCH, default /tmp/jetrack-fuzz), so a
# run leaves the checked-in corpus as it was. With --minimize the findings are merged into the
# checked-in corpus afterwards and that corpus is minimised (`cargo fuzz cmin`), ready to
# commit. A crash's input is in fuzz/artifacts/<target>/; keep it as a regression test by
# copying it to fuzz/regressions/<target>/ (replayed by `cargo test --test fuzz_corpus`).
#
# Stable Rust is enough: cargo-fuzz's default AddressSanitizer needs `-Zsanitizer` (nightly),
# so the targets are built with `--sanitizer none`. What remains is stable: the coverage
# instrumentation libFuzzer steers by (`-Cpasses=sancov-module` and `-Cllvm-args=-sanitizer-
# coverage-*`), and libFuzzer itself, compiled from C++ by libfuzzer-sys. The product is safe
# Rust, so the sanitizer would add little; `-a` keeps debug assertions and overflow checks on.
set -euo pipefail
cd "$(dirname "$0")/.."

minimize=false
if [ "${1:-}" = "--minimize" ]; then
  minimize=true
  shift
fi
minutes=${1:-10}
[ $# -gt 0 ] && shift
# libFuzzer reads -max_total_time=0 as "no limit".
case "$minutes" in
  '' | *[!0-9]* | 0)
    echo "usage: scripts/fuzz.sh [--minimize] [MINUTES] [TARGET...]" >&2
    exit 2
    ;;
esac

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# The same build settings for every command, so that nothing is built twice.
flags=(-O -a -s none)

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

echo "==> building ${targets[*]}"
cargo fuzz build "${flags[@]}"

scratch=${FUZZ_SCRATCH:-/tmp/jetrack-fuzz}
mkdir -p "$scratch/logs"
summary=()
crashed=0
for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  found="$scratch/corpus/$target"
  log="$scratch/logs/$target.log"
  mkdir -p "$corpus" "$found" "fuzz/artifacts/$target"
  args=(-max_total_time=$((minutes * 60)) -print_final_stats=1 -timeout=30)
  [ -f "fuzz/dict/$target.dict" ] && args+=("-dict=fuzz/dict/$target.dict")
  case "$target" in
    # Bodies up to the collect limit (8 KiB); libFuzzer's default is 4 KiB.
    collect_body | import_body) args+=(-max_len=8192) ;;
  esac
  echo "==> $target: $minutes min, new inputs in $found, log in $log"
  status=0
  # libFuzzer writes new inputs to the first corpus folder only: the scratch one.
  cargo fuzz run "${flags[@]}" "$target" "$found" "$corpus" -- "${args[@]}" >"$log" 2>&1 ||
    status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  cov=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]*' | tail -n1 | cut -d' ' -f2)
  ft=$(grep -E '^#[0-9]+' "$log" | grep -o 'ft: [0-9]*' | tail -n1 | cut -d' ' -f2)
  crashes=0
  if [ "$status" -ne 0 ]; then
    crashes=1
    crashed=1
    echo "!! $target failed (exit $status):"
    grep -E 'panicked at|Test unit written to|ERROR: libFuzzer' "$log" | head -n 5 || tail -n 20 "$log"
  fi
  summary+=("$(printf '%-14s %14s %8s %7s %7s %8s' "$target" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "$crashes")")
  if $minimize && [ "$status" -eq 0 ]; then
    echo "==> $target: merging the findings into $corpus and minimising it"
    cp -n "$found"/* "$corpus"/ 2>/dev/null || true
    # Edges only (no hit counts): the smallest set that keeps every covered branch, so the
    # checked-in corpus stays at a few hundred files.
    cargo fuzz cmin "${flags[@]}" "$target" "$corpus" -- -use_counters=0 \
      >"$scratch/logs/$target.cmin.log" 2>&1
    echo "    $(find "$corpus" -type f | wc -l) files, $(du -sb "$corpus" | cut -f1) bytes"
  fi
done

echo
printf '%-14s %14s %8s %7s %7s %8s\n' target executions exec/s cov ft crashes
printf '%s\n' "${summary[@]}"
exit "$crashed"
