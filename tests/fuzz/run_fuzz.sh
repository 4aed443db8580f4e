#!/usr/bin/env bash
# Runs the artifact-loader fuzzer for a bounded time with a seed corpus made from real small
# artifacts (written by test_runtime_parity): each as a file (mode byte 0) and as its
# decompressed container (mode byte 1). Prints SKIP and succeeds when the fuzzer could not be
# built (no clang with libFuzzer).
# usage: run_fuzz.sh FUZZER FIXTURE_DIR SECONDS
set -u
FUZZER=$(realpath -m "$1") FIX=$(realpath -m "$2") SECS=${3:-15}
if [ ! -x "$FUZZER" ]; then
  echo "SKIP: no fuzzer binary ($FUZZER): clang with libFuzzer (libclang-rt-dev) was not found at configure time"
  exit 0
fi
work=$(mktemp -d /tmp/tern_fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
n=0
for f in "$FIX"/*.tern; do
  [ -f "$f" ] || continue
  b=$(basename "$f" .tern)
  { printf '\000'; cat "$f"; } > "$work/corpus/file_$b"
  # the container: skip the 32-byte preamble, decompress the zstd frame
  if command -v zstd >/dev/null 2>&1; then
    { printf '\001'; tail -c +33 "$f" | zstd -dc 2>/dev/null; } > "$work/corpus/cont_$b"
  fi
  n=$((n + 1))
done
if [ "$n" = 0 ]; then
  echo "FAIL: no seed artifacts in $FIX (test_runtime_parity writes them)"
  exit 1
fi
echo "fuzzing the artifact loader for ${SECS}s with $(ls "$work/corpus" | wc -l) seeds"
cd "$work"
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "$FUZZER" -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=1048576 -timeout=10 -print_final_stats=1 \
  "$work/corpus" > "$work/log.txt" 2>&1
rc=$?
grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added)" "$work/log.txt"
grep -E "DONE|cov:" "$work/log.txt" | tail -1
if [ $rc -ne 0 ]; then
  echo "FAIL: the fuzzer found a crash (exit $rc):"
  tail -60 "$work/log.txt"
  mkdir -p /tmp/tern_fuzz_crashes && cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* /tmp/tern_fuzz_crashes/ 2>/dev/null
  echo "(reproducers copied to /tmp/tern_fuzz_crashes)"
  exit 1
fi
echo "fuzz: no crash"
