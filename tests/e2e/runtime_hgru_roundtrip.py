"""Hybrid-GRU export -> runtime round trip through the command lines: tiny hgru models trained a few
steps with ternary QAT on from step 0 on synthetic text (own BPE tokenizer, shards by `tern
prepare`), one per cell:

  * the torch GRU cell (G: GRU + MLP, g: GRU), ternary groups of 128 with int8 activations (the
    integer kernels; the recurrent inputs quantized per step on both sides);
  * the engine's cell under a narrower embedding (the hgru_engine shape scaled down: embed 64 ->
    state 128, one layer, untied head), ternary per tensor with the engine's mean-centred
    quantizer, base-3 packing;
  * the MLGRU (M, m), ternary groups of 128;
tern-run eval's val_bpb equals `tern eval --quantized` of the same checkpoint within 1e-4 over the
same windows and bytes. Then examples/agents.py drives agents on the GRU artifact through
libternrt.so with ctypes (threads, save / restore)."""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

from e2e_common import Checks

BIN = os.environ.get("TERN_BIN", "build/bin")
TERN, RUN = os.path.join(BIN, "tern"), os.path.join(BIN, "tern-run")
LIB = os.path.join(os.path.dirname(os.path.abspath(BIN)), "lib", "libternrt.so")
EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "agents.py")
check = Checks()
TRAIN_ENV = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")


def must(args, what, env=None):
    r = subprocess.run(list(args), capture_output=True, text=True, errors="replace", env=env, timeout=300)
    if r.returncode != 0:
        print(f"  FAIL {what}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        sys.exit(1)
    return r


d = tempfile.mkdtemp(prefix="tern_rt_hgru_e2e_")
rng = random.Random(5)
subj = "the gate|a state|every token|the update|one reset|this cell|the memory|a stream".split("|")
verb = "keeps|forgets|resets|carries|updates|reads|mixes|holds".split("|")
obj = "the past|its state|the next word|a candidate|the residual|each channel|the signal".split("|")


def doc():
    return " ".join(f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)}.".capitalize() for _ in range(rng.randint(3, 7)))


os.makedirs(os.path.join(d, "txt"))
corpus = os.path.join(d, "txt", "corpus.txt")
with open(corpus, "w") as f:
    f.write("\n\n".join(doc() for _ in range(600)))
tok = os.path.join(d, "tok.bpe")
must([TERN, "tokenizer", "train", corpus, "--vocab", "320", "-o", tok], "tokenizer")
must([TERN, "prepare", corpus, "--tokenizer", tok, "-o", os.path.join(d, "shards"), "--name", "syn", "--split", "blank",
      "--val-docs", "40"], "prepare")
val = os.path.join(d, "shards", "syn_val_*.bin")

CASES = [
    ("gru", {"arch": "hgru", "layout": "Gg", "layers": 0, "dim": 128, "mlp_hidden": 256},
     {"weights": "ternary", "group": 128, "act_bits": 8}, {}),
    ("engine", {"arch": "hgru_engine", "embed_dim": 64, "dim": 128, "gru_keep_bias": 1.0},
     {"weights": "ternary", "group": 0, "ternary_center": True}, {"ternary_packing": "base3"}),
    ("mlgru", {"arch": "hgru", "layout": "Mm", "layers": 0, "dim": 128, "mlp_hidden": 256},
     {"weights": "ternary", "group": 128}, {}),
]
arts = {}
for name, model, quant, export in CASES:
    print(f"{name}: {json.dumps(model)}, {json.dumps(quant)}")
    cfg = {
        "name": name, "out_dir": os.path.join(d, "runs"), "seed": 3,
        "model": dict(model, vocab_size=320, seq_len=64),
        "data": {"train": os.path.join(d, "shards", "syn_train_*.bin"), "val": val, "tokenizer": tok, "seq_len": 32},
        "quant": dict(quant, qat=True, start_step=0, min_numel=1000),
        "export": export,
        "train": {"batch_tokens": 256, "micro_batch": 8, "max_steps": 6, "log_every": 3, "val_every": 0, "eval_at_end": False},
    }
    path = os.path.join(d, f"{name}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    must([TERN, "train", path, "--quiet", "--json", "--threads", "1"], f"train {name}", TRAIN_ENV)
    ckpt = os.path.join(d, "runs", name, "ckpt", "latest.h5")
    art = arts[name] = os.path.join(d, f"{name}.tern")
    rep = json.loads(must([TERN, "export", "--ckpt", ckpt, "-o", art, "--json"], f"export {name}").stdout)
    ternary = [t for t in rep["tensors"] if t["dtype"].startswith("ternary")]
    ref = json.loads(must([TERN, "eval", "--ckpt", ckpt, "--data", val, "--quantized", "--json", "--threads", "1"], "tern eval").stdout)
    got = json.loads(must([RUN, "eval", art, "--data", val, "--json", "--threads", "1"], "tern-run eval").stdout)
    check(len(ternary) >= 3, f"{len(ternary)} tensors stored ternary ({ternary[0]['dtype'] if ternary else '-'}), {rep['bytes']} bytes")
    check(got["tokens"] == ref["tokens"] and got["bytes"] == ref["bytes"] and got["windows"] > 1,
          f"same {got['windows']} windows and byte count")
    diff = abs(got["val_bpb"] - ref["val_bpb"])
    check(diff < 1e-4, f"val_bpb tern-run {got['val_bpb']:.6f} vs tern eval --quantized {ref['val_bpb']:.6f}: |diff| {diff:.2e} < 1e-4")

print("agents through libternrt.so (examples/agents.py)")
if not os.path.exists(LIB):
    check(False, f"{LIB} not built")
else:
    r = subprocess.run([sys.executable, EXAMPLE, arts["gru"], "--lib", LIB, "--agents", "4", "--tokens", "16"], capture_output=True,
                       text=True, timeout=120)
    print("\n".join("    " + line for line in r.stdout.strip().splitlines()[-3:]))
    check(r.returncode == 0 and "continues identically: yes" in r.stdout and r.stdout.count("agent ") >= 4,
          f"4 agents on threads, save / restore through ctypes (exit {r.returncode}) {r.stderr[-300:]}")

print("e2e_runtime_hgru_roundtrip:", "FAILED" if check.failures else "all checks passed")
if not check.failures:
    shutil.rmtree(d, ignore_errors=True)
sys.exit(1 if check.failures else 0)
