#!/usr/bin/env bash
# Distillation for a ternary hgru student (experiments/hgru/README.md, "Distillation"), with tern's
# own tools on the FineWeb sample (sp1024):
#   1. a GPT teacher (4 x 256) trained by tern, 80 steps x 8192 tokens (half a pass over the shard);
#   2. its top-32 logits for every training position (`tern logits`, windows of 256);
#   3. the same ternary hgru student (GGGG, dim 256, BitNet b1.58 QAT from step 0, groups of 128,
#      int8 activations) trained 30 steps x 8192 tokens (the results table's budget) twice: labels only (alpha 0) and labels +
#      teacher (alpha 0.5); all three evaluated on the validation shard.
#   bash experiments/hgru/distill.sh [build]
set -euo pipefail
BUILD=${1:-build}
TERN="$BUILD/bin/tern"
OUT=runs/hgru_distill
D=${TERN_DATA:-../shared/data}/fineweb
mkdir -p "$OUT"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
base = json.load(open("experiments/hgru/base.json"))
base["out_dir"] = out
t = dict(base, name="teacher", model={"arch": "gpt", "layers": 4, "dim": 256, "heads": 4, "kv_heads": 2, "seq_len": 256})
t["train"] = dict(base["train"], max_steps=80)
t["optim"] = {"schedule": {"kind": "warmdown", "warmup_steps": 10, "warmdown_steps": 30}}
json.dump(t, open(f"{out}/teacher.json", "w"), indent=1)
s = dict(base, name="student", model={"arch": "hgru", "layout": "GGGG", "layers": 0, "dim": 256, "seq_len": 256})
s["train"] = dict(base["train"], max_steps=30)
s["optim"] = {"schedule": {"kind": "warmdown", "warmup_steps": 4, "warmdown_steps": 12}}
s["quant"] = {"qat": True, "start_step": 0, "weights": "ternary", "group": 128, "act_bits": 8, "min_numel": 0, "embed": True}
json.dump(s, open(f"{out}/student.json", "w"), indent=1)
PY
[ -f "$OUT/teacher/ckpt/latest.h5" ] || "$TERN" train "$OUT/teacher.json" --overwrite --threads 2 --json > "$OUT/teacher_summary.json"
mkdir -p "$OUT/logits"
[ -f "$OUT/logits/fineweb_train_000000.h5" ] || "$TERN" logits --ckpt "$OUT/teacher/ckpt/latest.h5" --data "$D/fineweb_train_000000.bin" \
  -o "$OUT/logits/fineweb_train_000000.h5" --k 32 --seq-len 256 --threads 2
for alpha in 0 0.5; do
  "$TERN" train "$OUT/student.json" --overwrite --threads 2 --set name="student_a$alpha" \
    --set distill.teacher="$OUT/logits/*.h5" --set distill.alpha=$alpha --json > "$OUT/student_a$alpha.json"
done
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
last = lambda f: json.loads(open(f"{out}/{f}").read().strip().splitlines()[-1])
t = last("teacher_summary.json")
print("| model | weights | alpha | params | tokens | val_bpb | train tok/s |")
print("| --- | --- | --- | --- | --- | --- | --- |")
print(f"| GPT teacher 4 x 256 | fp32 | - | {t['params']:,} | {t['tokens']:,} | {t['val_bpb']:.4f} | {t['tok_per_s']:,.0f} |")
for a in ("0", "0.5"):
    s = last(f"student_a{a}.json")
    print(f"| hgru GGGG 4 x 256 | ternary | {a} | {s['params']:,} | {s['tokens']:,} | {s['val_bpb']:.4f} | {s['tok_per_s']:,.0f} |")
PY
