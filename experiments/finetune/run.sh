#!/usr/bin/env bash
# One fine-tuning task three ways, for the table in README.md: karpathy's stories260K (imported
# with tern import) adapted to Shakespeare (../shared/data/text/tinyshakespeare.txt, paragraphs,
# 5% held out) by full fine-tuning (AdamW on every parameter), LoRA (rank 8 on every attention
# and feed-forward matrix, base frozen) and MeZO (forward passes only, every parameter), from the
# same start, for the same tokens; then the peak resident set of full vs LoRA fine-tuning of a
# larger model (a 19 M-parameter GPT) where the optimizer state dominates.
# Usage: experiments/finetune/run.sh [BUILD] [OUT]   (needs ../shared/data); STEPS, THREADS override
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-runs/finetune}
TERN=$BUILD/bin/tern
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${TERN_DATA:-$HERE/../../../shared/data}
STEPS=${STEPS:-300}
THREADS=${THREADS:-2}
mkdir -p "$OUT"
"$TERN" import "$DATA/teacher/stories260K-f32.gguf" -o "$OUT/teacher" > /dev/null
"$TERN" prepare "$DATA/text/tinyshakespeare.txt" --tokenizer "$OUT/teacher/tokenizer.model" -o "$OUT/shards" --name shakes \
  --split blank --val-fraction 0.05 --json > "$OUT/prepare.json"
"$TERN" eval --ckpt "$OUT/teacher/model.h5" --data "$OUT/shards/shakes_val_*.bin" --seq-len 256 --json > "$OUT/base_eval.json"

# the run config: the teacher's model section, Shakespeare shards, 8 x 256 tokens a step
/usr/bin/python3 - "$OUT" "$STEPS" "$THREADS" <<'PY'
import json, sys, h5py
out, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with h5py.File(f"{out}/teacher/model.h5", "r") as f:
    model = json.loads(f.attrs["config"])["model"]
cfg = {"name": "ft", "out_dir": out, "seed": 1, "threads": threads, "model": model,
       "data": {"train": f"{out}/shards/shakes_train_*.bin", "val": f"{out}/shards/shakes_val_*.bin",
                "tokenizer": f"{out}/teacher/tokenizer.model", "seq_len": 256},
       "optim": {"schedule": {"kind": "cosine", "warmup_steps": 10}},
       "train": {"batch_tokens": 2048, "micro_batch": 8, "max_steps": steps, "val_every": 0, "log_every": 25, "plot": False}}
json.dump(cfg, open(f"{out}/ft.json", "w"), indent=1)
PY
T="$OUT/teacher/model.h5"
LORA='{"rank":8,"alpha":16,"dropout":0.0,"base":"'$T'","targets":["*.attn.w?.weight","*.ffn.w?.weight"]}'
"$TERN" train "$OUT/ft.json" --overwrite --set name=full --set train.init_from="$T" \
  --set 'optim.groups={"ft":{"type":"adamw","lr":0.002}}' --set 'optim.rules=[{"match":"*","group":"ft"}]' --json > "$OUT/full.json"
"$TERN" train "$OUT/ft.json" --overwrite --set name=lora --set train.lora="$LORA" \
  --set 'optim.groups={"lora":{"type":"adamw","lr":0.004}}' --json > "$OUT/lora.json"
"$TERN" train "$OUT/ft.json" --overwrite --set name=mezo --set train.init_from="$T" \
  --set optim.mezo.enabled=true --set optim.mezo.lr=0.0001 --set optim.mezo.eps=0.001 --json > "$OUT/mezo.json"
"$TERN" export --ckpt "$OUT/lora/ckpt/latest.h5" --merge-lora -o "$OUT/lora_merged.tern" --json > "$OUT/lora_export.json"

# peak RSS: a 19 M-parameter GPT (dim 512, 8 layers, vocab 8192) saved after one step, then 3 steps
# of full fine-tuning and of LoRA (rank 8 on q and v) on the same data, 1 x 256 tokens a step
"$TERN" train "$OUT/ft.json" --overwrite --set name=big_base --set train.max_steps=1 --set train.eval_at_end=false \
  --set 'model={"arch":"gpt","vocab_size":8192,"layers":8,"dim":512,"heads":8,"kv_heads":4,"seq_len":256}' \
  --set train.batch_tokens=256 --set train.micro_batch=1 --json > "$OUT/big_base.json"
BIG="$OUT/big_base/ckpt/latest.h5"
for m in full lora; do
  extra=(--set train.init_from="$BIG")
  [ $m = lora ] && extra=(--set 'train.lora={"rank":8,"alpha":16,"base":"'$BIG'"}')
  "$TERN" train "$OUT/ft.json" --overwrite --set name=big_$m --set train.max_steps=3 --set train.eval_at_end=false \
    --set 'model={"arch":"gpt","vocab_size":8192,"layers":8,"dim":512,"heads":8,"kv_heads":4,"seq_len":256}' \
    --set train.batch_tokens=256 --set train.micro_batch=1 "${extra[@]}" --json > "$OUT/big_$m.json"
done

/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
last = lambda p: json.loads(open(p).read().strip().splitlines()[-1])
b = last(f"{out}/base_eval.json")
print(f"base (stories260K, no fine-tuning): val_loss {b['val_loss']:.4f} val_bpb {b['val_bpb']:.4f}")
print("| method | trained params | steps | tokens | final val_loss | val_bpb | tok/s | peak RSS (MB) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for m in ("full", "lora", "mezo"):
    s = last(f"{out}/{m}.json")
    tp = s.get("lora_params", s["params"])
    print(f"| {m} | {tp:,} | {s['steps']} | {s['tokens']:,} | {s['val_loss']:.4f} | {s['val_bpb']:.4f} | {s['tok_per_s']:.0f} | {s['peak_rss_mb']:.1f} |")
e = last(f"{out}/lora_export.json")
print(f"lora merged + exported: {e['bytes']:,} bytes")
print("| 19 M GPT, 3 steps | trained params | peak RSS (MB) | estimate (MB) | tok/s |")
print("| --- | ---: | ---: | ---: | ---: |")
for m in ("full", "lora"):
    s = last(f"{out}/big_{m}.json")
    print(f"| {m} | {s.get('lora_params', s['params']):,} | {s['peak_rss_mb']:.1f} | {s['mem_estimate_mb']:.1f} | {s['tok_per_s']:.0f} |")
PY
