#!/usr/bin/env bash
# TRN hybrid benchmarks (run by experiments/bench/run.sh): scan kernels on 1 and 2 threads, then
# the TRN layer and whole-model training step against the PyTorch peer (torch_trn.py runs both in
# one go on the same threads). Results: experiments/bench/TRN.md.
set -euo pipefail
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
THREADS=${TERN_BENCH_THREADS:-$(nproc)}
echo "# TRN scan kernels (B=1, T=1024, 2 drives, K=256): 1 thread, then $THREADS"
"$BUILD/bin/bench_trn" 1 scan
"$BUILD/bin/bench_trn" "$THREADS" scan
echo "# TRN layer and TRN hybrid training step, tern vs PyTorch, $THREADS threads"
/usr/bin/python3 "$HERE/torch_trn.py" --threads "$THREADS" --build "$BUILD"
