#!/usr/bin/env bash
# Data parallelism on one host: the baseline GPT (9x512, T=1024, 4,096 tokens per optimizer step,
# Muon + Adam) trained by 1 process with all cores as threads, against `mpirun -np R` ranks with
# cores/R threads each (same global batch, same windows). Prints tokens/s of the steady steps.
# Needs ../shared/data/fineweb (or TERN_BENCH_SHARD) and a tern built with MPI.
set -euo pipefail
BUILD=${1:-build}
TERN=$BUILD/bin/tern
HERE=$(cd "$(dirname "$0")" && pwd)
CFG=$HERE/../pgolf/baseline.json
SHARD=${TERN_BENCH_SHARD:-$HERE/../../../shared/data/fineweb/fineweb_train_000000.bin}
if [ ! -f "$SHARD" ]; then echo "# bench_mpi: SKIP (no FineWeb shard at $SHARD)"; exit 0; fi
if ! command -v mpirun >/dev/null || ! ldd "$TERN" | grep -q libmpi; then echo "# bench_mpi: SKIP (tern built without MPI)"; exit 0; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
CORES=$(nproc)
OUT=$(mktemp -d)
COMMON=(--set "data.train=$SHARD" --set data.val= --set data.tokenizer= --set train.batch_tokens=4096 --set train.max_steps=6
        --set train.max_seconds=0 --set train.val_every=0 --set train.eval_at_end=false --set "out_dir=$OUT" --overwrite --quiet)
steady() { /usr/bin/python3 -c "import json,sys; v=[json.loads(l)['tok_per_s'] for l in open(sys.argv[1]) if 'tok_per_s' in l][2:]; print(f'{sum(v)/len(v):.0f}')" "$1"; }
echo "# data parallelism, baseline GPT, 4,096 tokens/step, $CORES cores: tokens/s (mean of steps 3-6)"
"$TERN" train "$CFG" "${COMMON[@]}" --set name=r1 --threads "$CORES"
echo "{\"bench\":\"mpi\",\"ranks\":1,\"threads_per_rank\":$CORES,\"tok_per_s\":$(steady "$OUT/r1/metrics.jsonl")}"
for R in 2 4 8; do
  [ "$R" -le "$CORES" ] || break
  [ $((4 / R * R)) -eq 4 ] || continue
  mpirun -np "$R" "$TERN" train "$CFG" "${COMMON[@]}" --set name=r$R --threads $((CORES / R))
  echo "{\"bench\":\"mpi\",\"ranks\":$R,\"threads_per_rank\":$((CORES / R)),\"tok_per_s\":$(steady "$OUT/r$R/metrics.jsonl")}"
done
rm -rf "$OUT"
