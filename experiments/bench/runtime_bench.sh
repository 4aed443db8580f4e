#!/usr/bin/env bash
# Runtime measurements for experiments/bench/RUNTIME.md.
#   experiments/bench/runtime_bench.sh [BUILD] [OUT]
# 1. the default baseline GPT (9 x 512, vocab 1024, 17.06 M params) written by a 1-step training
#    run on synthetic shards (speed does not depend on the weights' values);
# 2. exported int5 (the default plan, weight-only) and ternary 2-bit (group 128, int8
#    activations, fp16 tied embedding: the BitNet b1.58 recipe);
# 3. tern-run bench (prefill 128 tokens, then 128 decode steps with a KV cache) at 1 and 2 threads;
# 4. tern's own fp32 forward of the same checkpoint at batch 1 (bench_runtime fp32): one token
#    at context 1, and KV-cache-less generation of 128 tokens after a 128-token prompt;
# 5. packed-weight GB/s of the ternary and int5 matvec kernels, and STREAM-like bandwidth.
# Every result is one JSON line in OUT/results.jsonl; a summary is printed at the end.
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-/tmp/tern_runtime_bench}
TERN="$BUILD/bin/tern"
RUN="$BUILD/bin/tern-run"
BENCH="$BUILD/bin/bench_runtime"
PY=/usr/bin/python3
mkdir -p "$OUT"
RES="$OUT/results.jsonl"
: > "$RES"

{
  printf '{"bench":"machine","date":"%s","cpu":"%s","cores":%s,' "$(date -u +%Y-%m-%dT%H:%MZ)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(nproc)"
  printf '"load_avg":"%s","kernel":"%s"}\n' "$(cut -d' ' -f1-3 /proc/loadavg)" "$(uname -r)"
} >> "$RES"

if [ ! -f "$OUT/runs/base/ckpt/latest.h5" ]; then
  "$PY" - "$OUT" <<'PY'
import sys, numpy as np
out = sys.argv[1]
toks = np.random.default_rng(1).integers(2, 1024, 16384)
toks[::512] = 1
hdr = np.zeros(256, dtype="<i4"); hdr[:3] = [20240520, 1, len(toks)]
with open(f"{out}/syn_train_000000.bin", "wb") as f:
    f.write(hdr.tobytes()); f.write(toks.astype("<u2").tobytes())
PY
  cat > "$OUT/base.json" <<JSON
{"name": "base", "out_dir": "$OUT/runs", "seed": 1, "model": {"arch": "gpt"},
 "data": {"train": "$OUT/syn_train_*.bin", "seq_len": 1024},
 "train": {"batch_tokens": 1024, "micro_batch": 1, "max_steps": 1, "val_every": 0, "eval_at_end": false}}
JSON
  "$TERN" train "$OUT/base.json" --quiet --threads 2 --overwrite > /dev/null
fi
CK="$OUT/runs/base/ckpt/latest.h5"
"$TERN" export --ckpt "$CK" -o "$OUT/int5.tern" --threads 2 --json > "$OUT/export_int5.json"
"$TERN" export --ckpt "$CK" -o "$OUT/ternary.tern" --quant ternary --act-bits 8 --embed 0 --threads 2 --json > "$OUT/export_ternary.json"
for m in int5 ternary; do
  "$PY" -c "import json,sys; d=json.load(open('$OUT/export_$m.json')); print(json.dumps({'bench':'export','model':'$m','bytes':d['bytes'],'container_bytes':d['container_bytes'],'packed_bytes':d['packed_bytes'],'code_bytes':d['code_bytes'],'pgolf_total':d['pgolf_total']}))" >> "$RES"
done

for t in 1 2; do
  for m in int5 ternary; do
    "$RUN" bench "$OUT/$m.tern" --threads "$t" --prompt 128 --gen 128 --repeat 5 --json | sed "s/^{/{\"bench\":\"tern-run\",\"model\":\"$m\",/" >> "$RES"
  done
  "$BENCH" fp32 "$CK" 128 128 "$t" >> "$RES"
done
"$BENCH" matvec >> "$RES"
"$BENCH" stream 256 >> "$RES"

"$PY" - "$RES" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
m = next(r for r in rows if r["bench"] == "machine")
print(f"machine: {m['cpu']}, {m['cores']} cores, {m['date']}, load average {m['load_avg']}")
for r in rows:
    if r["bench"] == "export":
        print(f"export {r['model']:8s}: artifact {r['bytes']:,} B (container {r['container_bytes']:,}), pgolf total {r['pgolf_total']:,}")
fp = {r["threads"]: r for r in rows if r["bench"] == "tern_fp32"}
for r in rows:
    if r["bench"] == "tern-run":
        f = fp[r["threads"]]
        print(f"threads {r['threads']} {r['model']:8s}: prefill {r['prefill_tok_per_s']:8.1f} tok/s, decode {r['decode_tok_per_s']:7.1f} tok/s"
              f" = {r['decode_tok_per_s'] / f['single_token_tok_per_s']:.1f}x tern fp32 single-token forward ({f['single_token_tok_per_s']:.1f}/s),"
              f" {r['decode_tok_per_s'] / f['recompute_decode_tok_per_s']:.1f}x fp32 recompute ({f['recompute_decode_tok_per_s']:.1f}/s);"
              f" RSS model +{(r['rss_model'] - r['rss_before_load']) / 1e6:.1f} MB vs artifact {r['file_bytes'] / 1e6:.1f} MB,"
              f" with session {r['rss_session'] / 1e6:.1f} MB")
for r in rows:
    if r["bench"] == "matvec":
        print(f"matvec {r['dtype']:8s} {r['path']:11s} {r['rows']:5d}x{r['cols']:<5d} ({r['packed_mb']:6.2f} MB) threads {r['threads']}:"
              f" {r['gbs']:6.2f} GB/s packed, {r['gmacs']:6.1f} GMAC/s")
    if r["bench"] == "stream":
        print(f"stream threads {r['threads']}: read {r['read_gbs']:.1f} GB/s, copy {r['copy_gbs']:.1f}, triad {r['triad_gbs']:.1f}")
PY
