"""Chimera with MoE layers (E = Gated DeltaNet + MoE) through the command lines: train, resume,
export, run. A tiny chimera (layout EGE: 4 routed experts top-2 + 1 shared per MoE layer) trains
a few steps on synthetic text (own BPE tokenizer, shards by `tern prepare`) with the chimera
seed's ternary QAT (weights absmean-ternary per group of 128, activations int8 per block of 64);
then
  * metrics.jsonl logs the routing load balance (max / mean tokens per expert) every logged step;
  * the routing biases moved (a buffer in the checkpoint, never trained by gradient: every value a
    whole number of bias-rate steps, at most one per step) and the router weight is fp32 (control
    tensor) in the artifact while the experts are ternary;
  * train 6 == train 3 + resume to 6: the same losses and the same biases, bit for bit;
  * with MPI: 2 ranks x 1 micro-step move the biases exactly as 1 process with 2 micro-steps
    (the loads are summed over micro-steps and ranks before the update);
  * MeZO (forward passes only) leaves the biases where they are;
  * tern-run eval's val_bpb equals `tern eval --quantized` of the checkpoint within 1e-4, over the
    same windows and bytes, on 1 and 2 threads.
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
from e2e_common import synthetic_text_shards, ENV, MPIEXEC, Checks, must_run

BIN = os.environ.get("TERN_BIN", "build/bin")
TERN, RUN = os.path.join(BIN, "tern"), os.path.join(BIN, "tern-run")
check = Checks()
TRAIN_ENV = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")  # see runtime_trn_roundtrip.py
must = must_run
RATE = 0.0078125  # 2^-7: sums of +-RATE are exact in float32


def biases(run):
    import h5py
    with h5py.File(os.path.join(d, "runs", run, "ckpt", "latest.h5"), "r") as f:
        g = f["buffers"]
        return {f"blocks.{i}.moe.bias": np.array(g[f"blocks.{i}.moe.bias"]) for i in (0, 2)}


def rows(run):
    with open(os.path.join(d, "runs", run, "metrics.jsonl")) as f:
        return [o for o in map(json.loads, f) if "train_loss" in o]


d = tempfile.mkdtemp(prefix="tern_rt_moe_e2e_")
words = "each token asks the router which two experts should read it and the bias keeps them busy alike".split()
tok, train_glob, val = synthetic_text_shards(d, TERN, words, 17, 700, 320, 50)
cfg = {
    "name": "moe", "out_dir": os.path.join(d, "runs"), "seed": 5,
    "model": {"arch": "chimera", "vocab_size": 320, "layout": "EGE", "dim": 128, "gdn_heads": 2, "seq_len": 64,
              "swiglu_hidden": 256, "gdn_chunk": 16, "moe_experts": 4, "moe_topk": 2, "moe_shared": 1, "moe_hidden": 128,
              "moe_bias_rate": RATE},
    "data": {"train": train_glob, "val": val, "tokenizer": tok, "seq_len": 48},
    "quant": {"qat": True, "start_step": 0, "weights": "ternary", "group": 128, "act_bits": 8, "act_block": 64,
              "min_numel": 1000},
    "train": {"batch_tokens": 384, "micro_batch": 8, "max_steps": 6, "log_every": 1, "val_every": 0, "eval_at_end": False},
}
cfg_path = os.path.join(d, "moe.json")
with open(cfg_path, "w") as f:
    json.dump(cfg, f)
must([TERN, "train", cfg_path, "--quiet", "--json", "--threads", "1"], "train", TRAIN_ENV)
ckpt = os.path.join(d, "runs", "moe", "ckpt", "latest.h5")

print("the load balance in metrics.jsonl, the biases in the checkpoint")
full = rows("moe")
bal = [o.get("moe_load_max_mean") for o in full]
check(len(full) == 6 and all(b is not None and 1.0 <= b <= 4.0 for b in bal),
      f"every logged step has moe_load_max_mean in [1, 4 experts]: {[round(b, 3) for b in bal if b is not None]}")
b = biases("moe")
steps = {n: v / RATE for n, v in b.items()}
check(all(np.array_equal(s, np.round(s)) and np.abs(s).max() <= 6 for s in steps.values()) and
      any(np.abs(v).max() > 0 for v in b.values()),
      f"biases moved in whole steps of the rate, at most 6: {[s.astype(int).tolist() for s in steps.values()]}")

print("resume: train 3 + resume to 6 == train 6")
must([TERN, "train", cfg_path, "--quiet", "--set", "name=split", "--stop-after", "3", "--threads", "1"], "train 3", TRAIN_ENV)
must([TERN, "train", "--resume", os.path.join(d, "runs", "split"), "--quiet", "--threads", "1"], "resume", TRAIN_ENV)
split, bs = rows("split"), biases("split")
check([o["train_loss"] for o in split] == [o["train_loss"] for o in full], "the same 6 losses, bit for bit")
check(all(np.array_equal(bs[n], b[n]) for n in b), "the same routing biases, bit for bit")

print("MeZO: forward passes only, no training forwards: the biases stay, no load is logged")
must([TERN, "train", cfg_path, "--quiet", "--set", "name=mezo", "--set", "optim.mezo.enabled=true", "--set", "train.max_steps=2",
      "--threads", "1"], "mezo", TRAIN_ENV)
bm = biases("mezo")
check(all(not v.any() for v in bm.values()) and not any("moe_load_max_mean" in o for o in rows("mezo")),
      "MeZO leaves the routing biases at 0 and logs no load balance")

if MPIEXEC and shutil.which(MPIEXEC):
    print("MPI: 2 ranks x 1 micro-step == 1 process x 2 micro-steps")
    must([TERN, "train", cfg_path, "--quiet", "--set", "name=one", "--set", "train.micro_batch=4", "--threads", "1"], "1 process")
    r = must([MPIEXEC, "-np", "2", TERN, "train", cfg_path, "--quiet", "--set", "name=two", "--set", "train.micro_batch=4",
              "--threads", "1"], "2 ranks", ENV)
    b1, b2 = biases("one"), biases("two")
    check(all(np.array_equal(b1[n], b2[n]) for n in b1), f"the same routing biases: {[(v / RATE).astype(int).tolist() for v in b2.values()]}")
else:
    print("  (no MPI: the 2-rank check is skipped)")

print("export and run: tern-run eval vs tern eval --quantized")
art = os.path.join(d, "moe.tern")
rep = json.loads(must([TERN, "export", "--ckpt", ckpt, "-o", art, "--json"], "export").stdout)
kinds = {t["name"]: t["dtype"] for t in rep["tensors"]}
experts = [n for n in kinds if ".moe.experts." in n or ".moe.shared." in n]
check(len(experts) == 20 and all(kinds[n] == "ternary2/g128+a8/b64" for n in experts),
      f"the 20 expert matrices of both layers stored ternary g128 with int8 activations ({kinds[experts[0]]})")
check(kinds.get("blocks.0.moe.router.weight") == "fp32" and kinds.get("blocks.0.moe.bias") == "fp32",
      f"router weight and routing bias fp32 ({kinds.get('blocks.0.moe.router.weight')}, {kinds.get('blocks.0.moe.bias')})")
ref = json.loads(must([TERN, "eval", "--ckpt", ckpt, "--data", val, "--quantized", "--json", "--threads", "1"], "tern eval").stdout)
got = {nt: json.loads(must([RUN, "eval", art, "--data", val, "--json", "--threads", str(nt)], "tern-run eval").stdout) for nt in (1, 2)}
check(got[1]["tokens"] == ref["tokens"] and got[1]["bytes"] == ref["bytes"] and got[1]["windows"] > 1,
      f"same {got[1]['windows']} windows and byte count: {got[1]['tokens']:.0f} tokens, {got[1]['bytes']:.0f} bytes")
diff = abs(got[1]["val_bpb"] - ref["val_bpb"])
check(diff < 1e-4, f"val_bpb tern-run {got[1]['val_bpb']:.6f} vs tern eval --quantized {ref['val_bpb']:.6f}: |diff| {diff:.2e} < 1e-4")
check(got[2]["val_loss"] == got[1]["val_loss"], f"2 threads: the same val_loss {got[2]['val_loss']!r}")
info = json.loads(must([RUN, "info", art, "--json"], "info").stdout)
check(info["arch"] == "chimera" and info["layers"] == 3, f"tern-run info: {info['arch']} {info['layers']} x {info['dim']}")

print("e2e_runtime_moe_roundtrip:", "FAILED" if check.failures else "all checks passed")
if not check.failures:
    shutil.rmtree(d, ignore_errors=True)  # a failure keeps its files for inspection
sys.exit(1 if check.failures else 0)
