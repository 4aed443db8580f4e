#!/usr/bin/env bash
# The Hybrid-GRU engine's shape in tern (experiments/hgru/README.md, "The engine"): hgru_engine —
# GPT-2's 50,257 pieces + 4 specials through MaxMatch (data-cache/gpt2/vocab.txt from
# scripts/install-deps.sh), a 256-wide embedding, one engine-cell GRU with a 1024 state, untied
# head: 68,269,312 parameters — trained a few ternary QAT steps on tinyshakespeare (the weights
# barely move: this measures the artifact, not quality), exported ternary per tensor with the
# engine's mean-centred quantizer (2-bit and base-3), then: disk size, resident memory with one
# session, decode tokens/s on 1 and 2 threads, agents' memory through libternrt.so, and the
# tern-run / tern eval --quantized agreement.
#   bash experiments/hgru/engine.sh [build]
set -euo pipefail
BUILD=${1:-build}
TERN="$BUILD/bin/tern" RUN="$BUILD/bin/tern-run"
OUT=runs/hgru_engine
VOCAB=data-cache/gpt2/vocab.txt
TEXT=${TERN_DATA:-../shared/data}/text/tinyshakespeare.txt
[ -f "$VOCAB" ] || { echo "engine.sh: $VOCAB missing (scripts/install-deps.sh fetches it with npm)" >&2; exit 1; }
mkdir -p "$OUT"
[ -d "$OUT/shards" ] || "$TERN" prepare "$TEXT" --tokenizer "$VOCAB" -o "$OUT/shards" --name shakes --split blank --val-docs 300 --json > "$OUT/prepare.json"
cat > "$OUT/engine.json" <<JSON
{"name": "engine", "out_dir": "$OUT", "seed": 1,
 "model": {"arch": "hgru_engine", "seq_len": 128},
 "data": {"train": "$OUT/shards/shakes_train_*.bin", "val": "$OUT/shards/shakes_val_*.bin", "tokenizer": "$VOCAB", "seq_len": 128},
 "quant": {"qat": true, "start_step": 0, "weights": "ternary", "group": 0, "ternary_center": true, "act_bits": 8,
           "min_numel": 0, "embed": true},
 "train": {"batch_tokens": 1024, "micro_batch": 8, "max_steps": 3, "log_every": 1, "val_every": 0, "eval_at_end": false}}
JSON
[ -f "$OUT/engine/ckpt/latest.h5" ] || "$TERN" train "$OUT/engine.json" --overwrite --threads 2 --json > "$OUT/train.json"
CK="$OUT/engine/ckpt/latest.h5"
for pack in 2bit base3; do
  [ -f "$OUT/engine-$pack.tern" ] || "$TERN" export --ckpt "$CK" -o "$OUT/engine-$pack.tern" --set export.ternary_packing=$pack --json > "$OUT/export-$pack.json"
done
[ -s "$OUT/eval-tern.json" ] || "$TERN" eval --ckpt "$CK" --data "$OUT/shards/shakes_val_*.bin" --quantized --json --max-tokens 16384 > "$OUT/eval-tern.json"
[ -s "$OUT/eval-run.json" ] || "$RUN" eval "$OUT/engine-base3.tern" --data "$OUT/shards/shakes_val_*.bin" --json --max-tokens 16384 > "$OUT/eval-run.json"
for t in 1 2; do
  "$RUN" bench "$OUT/engine-base3.tern" --prompt 32 --gen 96 --repeat 3 --threads $t --json > "$OUT/bench-$t.json"
done
for n in 1 16; do
  /usr/bin/python3 examples/agents.py "$OUT/engine-base3.tern" --lib "$BUILD/lib/libternrt.so" --agents $n --tokens 8 > "$OUT/agents-$n.txt"
done
/usr/bin/python3 - "$OUT" <<'PY'
import json, os, re, sys
out = sys.argv[1]
j = lambda f: json.loads(open(os.path.join(out, f)).read().strip().splitlines()[-1])
tr, b1, b2, et, er = j("train.json"), j("bench-1.json"), j("bench-2.json"), j("eval-tern.json"), j("eval-run.json")
print(f"params {tr['params']:,}")
for pack in ("2bit", "base3"):
    print(f"artifact ({pack}): {os.path.getsize(os.path.join(out, f'engine-{pack}.tern')):,} bytes")
print(json.dumps({k: v for k, v in b1.items() if "rss" in k or "tok_per_s" in k}))
print(json.dumps({k: v for k, v in b2.items() if "rss" in k or "tok_per_s" in k}))
rss = {}
for n in (1, 16):
    txt = open(os.path.join(out, f"agents-{n}.txt")).read()
    rss[n] = float(re.search(r"with (\d+) agents: ([0-9.]+) MiB", txt).group(2))
print(f"agents (python + libternrt.so): {rss[1]:.1f} MiB with 2 agents, {rss[16]:.1f} MiB with 17: "
      f"{(rss[16] - rss[1]) / 15 * 1024:.0f} KiB per more agent")
print(f"val_bpb tern eval --quantized {et['val_bpb']:.6f}, tern-run {er['val_bpb']:.6f}")
PY
