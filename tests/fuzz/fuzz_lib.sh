# fuzz_lib.sh — sourced by the fuzz runners (run_fuzz.sh, run_fuzz_target.sh).
# fuzz_run NAME FUZZER WORKDIR SECONDS SEED_DIR...
#   Runs a libFuzzer binary for SECONDS in WORKDIR over the seed folders (read-only: new inputs
#   go to WORKDIR/new), with leak detection on and UBSan fatal; extra libFuzzer flags come from
#   $FUZZ_FLAGS. Prints the run's statistics; on a crash, leak, timeout or broken invariant prints
#   the report, copies the reproducer to /tmp/tern_fuzz_crashes/NAME and returns 1.
fuzz_run() {
  local name=$1 fuzzer=$2 work=$3 secs=$4
  shift 4
  mkdir -p "$work/new"
  (cd "$work" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$fuzzer" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 ${FUZZ_FLAGS:-} \
    "$work/new" "$@" > "$work/log.txt" 2>&1)
  local rc=$?
  grep -E "^stat::(number_of_executed_units|new_units_added|peak_rss_mb)" "$work/log.txt"
  grep -E "DONE|cov:" "$work/log.txt" | tail -1
  if [ $rc -ne 0 ]; then
    echo "FAIL: the $name fuzzer found a crash, leak, timeout or broken invariant (exit $rc):"
    tail -60 "$work/log.txt"
    mkdir -p "/tmp/tern_fuzz_crashes/$name"
    cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "/tmp/tern_fuzz_crashes/$name/" 2>/dev/null
    echo "(reproducers copied to /tmp/tern_fuzz_crashes/$name: run the fuzzer binary on one to replay it)"
    return 1
  fi
  echo "fuzz $name: no crash"
}
