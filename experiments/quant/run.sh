#!/usr/bin/env bash
# Trains and evaluates the quantization experiments (experiments/quant/README.md and the
# parameter-golf table in experiments/pgolf/README.md) on the FineWeb sample, in parallel.
#
#   experiments/quant/run.sh OUT THREADS_PER_RUN RUN...
# RUN: gpt_fp32 | gpt_int5 | gpt_ternary | trn_int5
# Env: TERN (tern binary), TERN_RUN (tern-run), DATA (folder with the fineweb files),
#      STEPS (optimizer steps, default 24), BATCH (tokens per step, default 16384),
#      EVAL_TOKENS (cap for the sliding-window and TTT evaluations, default 16384).
# Each run: train -> tern eval (float) -> tern eval --quantized -> tern export -> tern-run eval
# -> sliding-window and TTT evaluations; one JSON file per measurement in OUT/.
set -uo pipefail
OUT=$1
THREADS=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TERN=${TERN:-$ROOT/build/bin/tern}
TERN_RUN=${TERN_RUN:-$ROOT/build/bin/tern-run}
DATA=${DATA:-$ROOT/../shared/data/fineweb}
STEPS=${STEPS:-24}
BATCH=${BATCH:-16384}
EVAL_TOKENS=${EVAL_TOKENS:-16384}
VAL_TOKENS=${VAL_TOKENS:-0}   # cap for the standard evaluations (0 = the whole split)
cap=()
[ "$VAL_TOKENS" != 0 ] && cap=(--max-tokens "$VAL_TOKENS")
mkdir -p "$OUT"
VAL="$DATA/fineweb_val_000000.bin"

common=(--set "out_dir=$OUT/runs" --set "threads=$THREADS" --set "data.train=$DATA/fineweb_train_*.bin"
        --set "data.val=$DATA/fineweb_val_*.bin" --set "data.tokenizer=$DATA/fineweb_1024_bpe.model"
        --set "train.batch_tokens=$BATCH" --set train.micro_batch=2 --set "train.max_steps=$STEPS"
        --set train.max_seconds=0 --set train.val_every=0 --set train.log_every=1 --set train.ckpt_every=0
        --set "optim.schedule.warmdown_steps=$STEPS" --set optim.schedule.warmup_steps=5 --overwrite --quiet --json)

one() {
  local name=$1 cfg extra=()
  case $name in
    gpt_fp32)    cfg=$ROOT/experiments/pgolf/baseline.json; extra=(--set quant.qat=false --set quant.weights=int5) ;;
    gpt_int5)    cfg=$ROOT/experiments/pgolf/baseline.json; extra=(--set quant.qat=true --set quant.weights=int5 --set quant.start_lr_frac=0.3) ;;
    gpt_ternary) cfg=$ROOT/experiments/pgolf/baseline.json
                 extra=(--set quant.qat=true --set quant.weights=ternary --set quant.group=128 --set quant.act_bits=8
                        --set quant.start_step=0 --set quant.start_lr_frac=0 --set quant.embed=false) ;;
    trn_int5)    cfg=$ROOT/experiments/pgolf/trn_hybrid.json ;;
    *) echo "unknown run $name" >&2; return 1 ;;
  esac
  local ck=$OUT/runs/$name/ckpt/latest.h5
  "$TERN" train "$cfg" --set "name=$name" "${common[@]}" "${extra[@]}" > "$OUT/$name.train.json" 2> "$OUT/$name.train.log"
  "$TERN" eval --ckpt "$ck" --data "$VAL" --json --threads "$THREADS" "${cap[@]}" > "$OUT/$name.eval_float.json" 2>> "$OUT/$name.log"
  "$TERN" eval --ckpt "$ck" --data "$VAL" --json --quantized --threads "$THREADS" "${cap[@]}" > "$OUT/$name.eval_quant.json" 2>> "$OUT/$name.log"
  "$TERN" export --ckpt "$ck" -o "$OUT/$name.tern" --json > "$OUT/$name.export.json" 2>> "$OUT/$name.log" &&
    "$TERN_RUN" eval "$OUT/$name.tern" --data "$VAL" --json --threads "$THREADS" "${cap[@]}" > "$OUT/$name.runtime.json" 2>> "$OUT/$name.log"
  "$TERN" eval --ckpt "$ck" --data "$VAL" --json --quantized --sliding 64 --max-tokens "$EVAL_TOKENS" --threads "$THREADS" \
    > "$OUT/$name.eval_sliding.json" 2>> "$OUT/$name.log"
  "$TERN" eval --ckpt "$ck" --data "$VAL" --json --quantized --max-tokens "$EVAL_TOKENS" --threads "$THREADS" \
    > "$OUT/$name.eval_quant_capped.json" 2>> "$OUT/$name.log"
  "$TERN" eval --ckpt "$ck" --data "$VAL" --json --quantized --ttt --max-tokens "$EVAL_TOKENS" --threads "$THREADS" \
    > "$OUT/$name.eval_ttt.json" 2>> "$OUT/$name.log"
  echo "$name done" >&2
}

for r in "$@"; do one "$r" & done
wait
