#!/usr/bin/env bash
# make bench: tern against its PyTorch peer (Debian python3-torch), same machine, same threads,
# same run. Results are printed as JSON lines and summarised; see experiments/bench/README.md.
set -euo pipefail
BUILD=${1:-build}
THREADS=${TERN_BENCH_THREADS:-$(nproc)}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
SHARD=${TERN_BENCH_SHARD:-$HERE/../../../shared/data/fineweb/fineweb_train_000000.bin}
export TERN_BENCH_SHARD=$SHARD OMP_NUM_THREADS=$THREADS
# PyTorch links the same OpenBLAS: give the peer the kernels tern runs on (tern corrects a core
# below the CPU by itself, kernels/blas_core.h; a core you set applies to both)
if [ -z "${OPENBLAS_CORETYPE+set}" ]; then
  export OPENBLAS_CORETYPE=$("$BUILD/bin/tern" info --json | $PY -c 'import json, sys; print(json.load(sys.stdin)["blas_core"])')
fi
echo "# machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores), threads $THREADS, OpenBLAS core $OPENBLAS_CORETYPE, $(date -u +%F)"
echo "# core kernels (matmul op vs raw sgemm; fused attention vs torch)"
"$BUILD/bin/bench_core" "$THREADS"
$PY "$HERE/torch_attention.py" "$THREADS"
echo "# baseline GPT training step (9x512, T=1024, 4 micro-steps of 1024 tokens, Muon + Adam)"
"$BUILD/bin/bench_gpt" "$THREADS" 4 3 | tee /tmp/tern_bench_gpt.json
$PY "$HERE/torch_gpt.py" "$THREADS" 4 2 | tee /tmp/torch_bench_gpt.json
$PY - <<'PYEOF'
import json
t = json.load(open("/tmp/tern_bench_gpt.json"))
p = json.load(open("/tmp/torch_bench_gpt.json"))
print(f"# GPT train: tern {t['tok_per_s']:.0f} tok/s vs PyTorch {p['tok_per_s']:.0f} tok/s = {t['tok_per_s']/p['tok_per_s']:.2f}x; "
      f"tern at {100*t['peak_fraction']:.0f}% of the measured sgemm peak ({t['model_gflops']:.0f} of {t['sgemm_peak_gflops']:.0f} GFLOP/s); "
      f"peak RSS tern {t['peak_rss_mb']:.0f} MB, PyTorch {p['peak_rss_mb']:.0f} MB")
PYEOF
for extra in "$HERE"/bench_*.sh; do [ -x "$extra" ] && "$extra" "$BUILD"; done
true
