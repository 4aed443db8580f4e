#!/usr/bin/env bash
# mLSTM benchmarks (run by experiments/bench/run.sh): the cell and the block forward+backward at
# B=4, T=1024, dim 512 (16 heads of 64) -- tern chunkwise, parallel and recurrent against the
# PyTorch chunked peer -- and training throughput of an all-X chimera against the GPT of about its
# parameter count; torch_mlstm.py runs both in one go on the same threads and ends with one table
# of issue 13's ratios. Results: experiments/chimera/README.md (section mLSTM).
#   experiments/bench/bench_mlstm.sh [build dir]   (PYTHON=python3, TERN_BENCH_THREADS=2)
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
THREADS=${TERN_BENCH_THREADS:-2}
# the first of $PYTHON, python3 on PATH, /usr/bin/python3 that imports torch (1.13 or 2.x)
PY=
for p in "${PYTHON:-}" python3 /usr/bin/python3; do
  if [ -n "$p" ] && "$p" -c "import torch" 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "$(basename "$0"): no python3 that imports torch (set PYTHON)" >&2; exit 1; }
# passive OpenMP waits for both sides, as the tern command sets for itself (README: spinning
# waits next to another process slowed 2-thread runs 15-50x)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
echo "# mLSTM cell / block / training, tern vs PyTorch, $THREADS threads"
"$PY" "$HERE/torch_mlstm.py" --threads "$THREADS" --build "$BUILD"
