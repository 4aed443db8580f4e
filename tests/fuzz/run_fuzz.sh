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
. "$(dirname "$0")/fuzz_lib.sh"
FUZZ_FLAGS=-max_len=1048576 fuzz_run artifact "$FUZZER" "$work" "$SECS" "$work/corpus"
