#!/usr/bin/env bash
# Hybrid-GRU results (experiments/hgru/README.md): on the FineWeb sample (sp1024), one token budget
# (30 steps x 8192 tokens = 245,760), four backbones of about the same shape (4 layers, dim 256,
# seq 256) fp32 and ternary (BitNet b1.58 QAT from step 0: every matrix and the embedding, groups
# of 128, int8 activations), then the PyTorch peer's training tok/s for the hgru GRU model (nn.GRU
# layers) in the same run. Everything on 2 threads. Writes runs/hgru/results.jsonl and prints a table.
#   bash experiments/hgru/run.sh [build]
set -euo pipefail
BUILD=${1:-build}
TERN="$BUILD/bin/tern"
OUT=runs/hgru
mkdir -p "$OUT"
: > "$OUT/results.jsonl"
TERNARY=(--set quant.qat=true --set quant.start_step=0 --set quant.weights=ternary --set quant.group=128
         --set quant.act_bits=8 --set quant.min_numel=0 --set quant.embed=true)
declare -A MODEL=(
  [gpt]='{"arch":"gpt","layers":4,"dim":256,"heads":4,"kv_heads":2,"seq_len":256}'
  [trn_hybrid]='{"arch":"trn_hybrid","layout":"TATA","dim":256,"heads":4,"kv_heads":2,"seq_len":256,"oscillators":64,"bigram_rows":2048,"res_warmup":10}'
  [hgru_gru]='{"arch":"hgru","layout":"GGGG","layers":0,"dim":256,"seq_len":256}'
  [hgru_mlgru]='{"arch":"hgru","layout":"MMMM","layers":0,"dim":256,"seq_len":256}'
)
for name in gpt trn_hybrid hgru_gru hgru_mlgru; do
  for q in fp32 ternary; do
    cfg="$OUT/$name-$q.json"
    python3 - "$cfg" "$name-$q" "${MODEL[$name]}" <<'PY'
import json, sys
base = json.load(open("experiments/hgru/base.json"))
base["name"], base["model"] = sys.argv[2], json.loads(sys.argv[3])
json.dump(base, open(sys.argv[1], "w"), indent=1)
PY
    extra=()
    [ "$q" = ternary ] && extra=("${TERNARY[@]}")
    echo "== $name $q" >&2
    "$TERN" train "$cfg" --overwrite --threads 2 --json "${extra[@]}" | tail -n 1 |
      python3 -c "import json,sys; s=json.load(sys.stdin); s['run']='$name-$q'; print(json.dumps(s))" >> "$OUT/results.jsonl"
  done
done
echo "== PyTorch peer (nn.GRU)" >&2
/usr/bin/python3 experiments/hgru/torch_hgru.py --threads 2 --steps 2 >> "$OUT/results.jsonl"
python3 experiments/hgru/table.py "$OUT/results.jsonl"
