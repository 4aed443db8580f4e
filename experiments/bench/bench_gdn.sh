#!/usr/bin/env bash
# Gated DeltaNet benchmarks (run by experiments/bench/run.sh): the gated delta rule op and one gdn
# layer, tern chunkwise vs tern recurrent vs the PyTorch peer (torch_gdn.py runs both on the same
# threads), then training throughput of a small all-G chimera vs the GPT of the same parameter
# count. Results: experiments/chimera/README.md.
set -euo pipefail
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
THREADS=${TERN_BENCH_THREADS:-2}
echo "# Gated DeltaNet op, layer and chimera training, tern vs PyTorch, $THREADS threads"
/usr/bin/python3 "$HERE/torch_gdn.py" --threads "$THREADS" --build "$BUILD" --model
