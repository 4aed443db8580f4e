#!/usr/bin/env bash
# Knowledge distillation from a real pretrained teacher, end to end with tern:
#   1. import karpathy's tinyllamas stories260K (GGUF) -> tern checkpoint + SentencePiece tokenizer
#   2. sample a corpus of stories from the teacher (tern generate; the shared data has no
#      TinyStories, the teacher's own domain)
#   3. prepare shards in the teacher's vocabulary, write the teacher's top-k logits (tern logits)
#   4. train the same small student three ways for the same steps: labels only (alpha 0), labels +
#      teacher (alpha 0.5), teacher only (alpha 1); evaluate all on held-out stories
# Usage: experiments/distill/run.sh [BUILD] [OUT]   (needs ../shared/data/teacher)
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-runs/distill}
TERN=$BUILD/bin/tern
HERE=$(cd "$(dirname "$0")" && pwd)
GGUF=${TERN_DATA:-$HERE/../../../shared/data}/teacher/stories260K-f32.gguf
STORIES=${STORIES:-1000}
STEPS=${STEPS:-400}
mkdir -p "$OUT"
"$TERN" import "$GGUF" -o "$OUT/teacher"

if [ ! -s "$OUT/stories.jsonl" ]; then
  echo "sampling $STORIES stories from the teacher (temperature 1, top-p 0.95) ..." >&2
  /usr/bin/python3 - "$TERN" "$OUT" "$STORIES" <<'PY'
import json, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
tern, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def one(seed):
    r = subprocess.run([tern, "generate", "--ckpt", f"{out}/teacher/model.h5", "-n", "256", "--temp", "1.0",
                        "--top-p", "0.95", "--seed", str(seed), "--threads", "1"], capture_output=True, text=True, check=True)
    return r.stdout.strip()
with ThreadPoolExecutor(2) as ex, open(f"{out}/stories.jsonl", "w") as f:
    for text in ex.map(one, range(1, n + 1)):
        if text:
            f.write(json.dumps({"text": text}) + "\n")
PY
fi
"$TERN" prepare "$OUT/stories.jsonl" --tokenizer "$OUT/teacher/tokenizer.model" -o "$OUT/shards" --name stories \
  --val-docs "$((STORIES / 10))" --json > "$OUT/prepare.json"
"$TERN" logits --ckpt "$OUT/teacher/model.h5" --data "$OUT/shards/stories_train_000000.bin" -o "$OUT/teacher_logits/stories_train_000000.h5" \
  --k 32 --seq-len 256
"$TERN" eval --ckpt "$OUT/teacher/model.h5" --data "$OUT/shards/stories_val_*.bin" --seq-len 256 --json > "$OUT/teacher_eval.json"

for alpha in 0 0.5 1; do
  "$TERN" train "$HERE/student.json" --overwrite --set name="student_a$alpha" --set out_dir="$OUT" \
    --set data.train="$OUT/shards/stories_train_*.bin" --set data.val="$OUT/shards/stories_val_*.bin" \
    --set data.tokenizer="$OUT/teacher/tokenizer.model" --set train.max_steps="$STEPS" \
    --set distill.teacher="$OUT/teacher_logits/*.h5" --set distill.alpha="$alpha" --json > "$OUT/student_a$alpha.json"
done
/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
t = json.load(open(f"{out}/teacher_eval.json"))
p = json.load(open(f"{out}/prepare.json"))
print(f"corpus: {p.get('documents')} stories, {p.get('tokens')} tokens; teacher val_loss {t['val_loss']:.4f} val_bpb {t['val_bpb']:.4f}")
print("| student | alpha | val_loss | val_bpb | tok/s |")
print("| --- | --- | --- | --- | --- |")
for a in ("0", "0.5", "1"):
    s = json.loads(open(f"{out}/student_a{a}.json").read().strip().splitlines()[-1])
    print(f"| {s['params']:,} params | {a} | {s['val_loss']:.4f} | {s['val_bpb']:.4f} | {s['tok_per_s']:.0f} |")
PY
