#!/usr/bin/env bash
# Runs one reader harness (tests/fuzz/fuzz_<TARGET>.c) for a bounded time over its committed seeds
# (tests/fuzz/corpus/TARGET: synthetic seeds and the regression inputs of fixed bugs) and, when the
# shared data folder is there, seeds derived from it (make_seeds.py --derive). Prints SKIP and
# succeeds when the harness could not be built (no clang with libFuzzer).
# usage: run_fuzz_target.sh FUZZER TARGET SECONDS [DATA_DIR]    (TERN_FUZZ_SECONDS overrides SECONDS)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
FUZZER=$(realpath -m "$1") TARGET=$2 SECS=${TERN_FUZZ_SECONDS:-${3:-10}} DATA=${4:-}
if [ ! -x "$FUZZER" ]; then
  echo "SKIP: no fuzzer binary ($FUZZER): clang with libFuzzer (libclang-rt-dev) was not found at configure time"
  exit 0
fi
. "$HERE/fuzz_lib.sh"
work=$(mktemp -d /tmp/tern_fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
seeds=("$HERE/corpus/$TARGET")
if [ -n "$DATA" ] && [ -d "$DATA" ]; then
  python3 "$HERE/make_seeds.py" --derive "$DATA" --out "$work/derived" || exit 1
  [ -d "$work/derived/$TARGET" ] && seeds+=("$work/derived/$TARGET")
else
  echo "(no shared data folder at '$DATA': committed seeds only)"
fi
echo "fuzzing $TARGET for ${SECS}s from $(ls "${seeds[@]}" | grep -vc ':$') seeds"
fuzz_run "$TARGET" "$FUZZER" "$work" "$SECS" "${seeds[@]}"
