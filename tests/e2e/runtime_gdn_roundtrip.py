"""Chimera (Gated DeltaNet layers) export -> runtime round trip through the command lines, with the
chimera seed's ternary QAT: weights absmean-ternary per group of 128, activations int8 absmax per
block of 64, from step 0. A tiny chimera (layout GS: a Gated DeltaNet layer and the span knot,
each with SwiGLU) trains a few steps on synthetic text (own BPE tokenizer, shards by `tern
prepare`); then
  * tern-run eval's val_bpb equals `tern eval --quantized` of the checkpoint within 1e-4, over the
    same windows and bytes, on 1 and 2 threads;
  * the projections are stored ternary with activation blocks of 64 (the export report);
  * generation with a seed is deterministic; tern-run info reports the model.
"""
import json
import os
import shutil
import sys
import tempfile

from e2e_common import synthetic_text_shards, Checks, must_run

BIN = os.environ.get("TERN_BIN", "build/bin")
TERN, RUN = os.path.join(BIN, "tern"), os.path.join(BIN, "tern-run")
check = Checks()
TRAIN_ENV = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")  # see runtime_trn_roundtrip.py


must = must_run


d = tempfile.mkdtemp(prefix="tern_rt_gdn_e2e_")
words = "the delta rule writes each key once and the gate forgets what the state held before".split()
tok, train_glob, val = synthetic_text_shards(d, TERN, words, 13, 700, 320, 50)
cfg = {
    "name": "gdn", "out_dir": os.path.join(d, "runs"), "seed": 5,
    "model": {"arch": "chimera", "vocab_size": 320, "layout": "GS", "dim": 128, "gdn_heads": 2, "seq_len": 64,
              "swiglu_hidden": 256, "gdn_chunk": 16},
    "data": {"train": train_glob, "val": val, "tokenizer": tok, "seq_len": 48},
    "quant": {"qat": True, "start_step": 0, "weights": "ternary", "group": 128, "act_bits": 8, "act_block": 64,
              "min_numel": 1000},
    "train": {"batch_tokens": 384, "micro_batch": 8, "max_steps": 6, "log_every": 3, "val_every": 0, "eval_at_end": False},
}
with open(os.path.join(d, "gdn.json"), "w") as f:
    json.dump(cfg, f)
must([TERN, "train", os.path.join(d, "gdn.json"), "--quiet", "--json", "--threads", "1"], "train", TRAIN_ENV)
ckpt = os.path.join(d, "runs", "gdn", "ckpt", "latest.h5")
art = os.path.join(d, "gdn.tern")

print("ternary g128 + int8 activations in blocks of 64, QAT from step 0")
rep = json.loads(must([TERN, "export", "--ckpt", ckpt, "-o", art, "--json"], "export").stdout)
kinds = {t["name"]: t["dtype"] for t in rep["tensors"]}
proj = [n for n in kinds if n.endswith("_proj.weight") and n.split(".")[-2][0] in "qkvgo"]
check(len(proj) == 10 and all(kinds[n] == "ternary2/g128+a8/b64" for n in proj),
      f"q/k/v/g/o projections of both layers stored ternary g128 with int8 activation blocks of 64 ({kinds[proj[0]]})")
ref = json.loads(must([TERN, "eval", "--ckpt", ckpt, "--data", val, "--quantized", "--json", "--threads", "1"], "tern eval").stdout)
got = {nt: json.loads(must([RUN, "eval", art, "--data", val, "--json", "--threads", str(nt)], "tern-run eval").stdout) for nt in (1, 2)}
check(got[1]["tokens"] == ref["tokens"] and got[1]["bytes"] == ref["bytes"] and got[1]["windows"] > 1,
      f"same {got[1]['windows']} windows and byte count: {got[1]['tokens']:.0f} tokens, {got[1]['bytes']:.0f} bytes")
diff = abs(got[1]["val_bpb"] - ref["val_bpb"])
check(diff < 1e-4, f"val_bpb tern-run {got[1]['val_bpb']:.6f} vs tern eval --quantized {ref['val_bpb']:.6f}: |diff| {diff:.2e} < 1e-4")
check(got[2]["val_loss"] == got[1]["val_loss"], f"2 threads: the same val_loss {got[2]['val_loss']!r}")

gen = lambda seed: json.loads(must([RUN, "generate", art, "--prompt", "The delta", "-n", "20", "--seed", str(seed), "--temp", "1.0",
                                    "--json"], "generate").stdout)
g1, g2 = gen(42), gen(42)
check(g1["ids"] == g2["ids"] and len(g1["ids"]) > 0, f"seed 42 twice: same {len(g1['ids'])} tokens: {g1['text'][:50]!r}")
info = json.loads(must([RUN, "info", art, "--json"], "info").stdout)
check(info["arch"] == "chimera" and info["layers"] == 2 and info["dim"] == 128, f"tern-run info: {info['arch']} {info['layers']} x {info['dim']}")

print("e2e_runtime_gdn_roundtrip:", "FAILED" if check.failures else "all checks passed")
if not check.failures:
    shutil.rmtree(d, ignore_errors=True)  # a failure keeps its files for inspection
sys.exit(1 if check.failures else 0)
