#!/usr/bin/env bash
# Gated DeltaNet benchmarks (run by experiments/bench/run.sh): the gated delta rule op and one gdn
# layer, tern chunkwise vs tern recurrent vs the PyTorch peer (torch_gdn.py runs both on the same
# threads), then training throughput of a small all-G chimera vs the GPT of the same parameter
# count; ends with one table of issue 13's ratios. Results: experiments/chimera/README.md.
#   experiments/bench/bench_gdn.sh [build dir]     (PYTHON=python3, TERN_BENCH_THREADS=2)
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
# passive OpenMP waits for both sides, as the tern command sets for itself
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
echo "# Gated DeltaNet op, layer and chimera training, tern vs PyTorch, $THREADS threads"
"$PY" "$HERE/torch_gdn.py" --threads "$THREADS" --build "$BUILD" --model
