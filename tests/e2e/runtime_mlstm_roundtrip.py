"""mLSTM (chimera preset, X layers) export -> runtime round trip through the command lines: a tiny
chimera (XX, dim 64, heads of 32) trained a few steps with ternary QAT as the seed configures it
(absmean per group of 128, int8 activations per block of 64; on from step 0) on synthetic text:
tern-run eval's val_bpb equals `tern eval --quantized` of the same checkpoint within 1e-4 over the
same windows and bytes (the trainer evaluates with the chunkwise form, the runtime with the
recurrent step), with 1 and 2 threads alike; tern-run info reads the artifact."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from e2e_common import synthetic_text_shards, Checks

BIN = os.environ.get("TERN_BIN", "build/bin")
TERN, RUN = os.path.join(BIN, "tern"), os.path.join(BIN, "tern-run")
check = Checks()
TRAIN_ENV = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")


def must(args, what, env=None):
    r = subprocess.run(list(args), capture_output=True, text=True, errors="replace", env=env, timeout=300)
    if r.returncode != 0:
        print(f"  FAIL {what}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        sys.exit(1)
    return r


d = tempfile.mkdtemp(prefix="tern_rt_mlstm_e2e_")
words = "the memory|a gate|each head|the state|one key|its value|the query|a chunk|forgets|stores|reads|keeps".split("|")
tok, train_glob, val = synthetic_text_shards(d, TERN, words, 5, 400, 300, 40)
cfg = {
    "name": "xm", "out_dir": os.path.join(d, "runs"), "seed": 3,
    "model": {"arch": "chimera", "vocab_size": 300, "layout": "XX", "dim": 64, "seq_len": 64, "mlstm_head_dim": 32,
              "mlstm_chunk": 16},
    "data": {"train": train_glob, "val": val, "tokenizer": tok, "seq_len": 48},
    "quant": {"qat": True, "start_step": 0, "min_numel": 1000, "weights": "ternary", "group": 128, "act_bits": 8, "act_block": 64},
    "train": {"batch_tokens": 384, "micro_batch": 8, "max_steps": 8, "log_every": 4, "val_every": 0, "eval_at_end": False},
}
with open(os.path.join(d, "xm.json"), "w") as f:
    json.dump(cfg, f)
must([TERN, "train", os.path.join(d, "xm.json"), "--quiet", "--json", "--threads", "1"], "train", TRAIN_ENV)
ckpt = os.path.join(d, "runs", "xm", "ckpt", "latest.h5")
art = os.path.join(d, "xm.tern")
rep = json.loads(must([TERN, "export", "--ckpt", ckpt, "-o", art, "--json"], "export").stdout)
kinds = {t["name"]: t["dtype"] for t in rep["tensors"]}
check(kinds["blocks.0.mlstm.proj_up.weight"].startswith("ternary") and kinds["blocks.1.mlstm.proj_down.weight"].startswith("ternary"),
      f"projections stored ternary ({kinds['blocks.0.mlstm.proj_up.weight']})")
ref = json.loads(must([TERN, "eval", "--ckpt", ckpt, "--data", val, "--quantized", "--json", "--threads", "1"], "tern eval").stdout)
for th in ("1", "2"):
    got = json.loads(must([RUN, "eval", art, "--data", val, "--json", "--threads", th], "tern-run eval").stdout)
    check(got["tokens"] == ref["tokens"] and got["bytes"] == ref["bytes"] and got["windows"] > 1,
          f"{th} thread(s): same {got['windows']} windows, {got['tokens']:.0f} tokens, {got['bytes']:.0f} bytes")
    diff = abs(got["val_bpb"] - ref["val_bpb"])
    check(diff < 1e-4, f"{th} thread(s): val_bpb tern-run {got['val_bpb']:.6f} vs tern eval --quantized {ref['val_bpb']:.6f}: "
          f"|diff| {diff:.2e} < 1e-4")
info = json.loads(must([RUN, "info", art, "--json"], "info").stdout)
check(info["arch"] == "chimera" and info["layers"] == 2 and info["dim"] == 64, f"tern-run info: {info['arch']} {info['layers']} x {info['dim']}")
if not check.failures:
    shutil.rmtree(d, ignore_errors=True)
check.finish("e2e_runtime_mlstm_roundtrip")
