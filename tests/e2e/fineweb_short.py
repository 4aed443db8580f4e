"""A short real run on the FineWeb sample: a 4x128 GPT trained for 200 steps of 4,096 tokens
(~0.8 M tokens, about a minute on 2 cores) must beat, by 0.1 bpb, the best add-alpha smoothed
BIGRAM model estimated from the whole training shard (computed here with numpy: ~2.57 bpb).
A broken model — no working attention, a wrong loss, wrong data order — cannot: without
context beyond the previous token it is at best the bigram model. Skips without the data."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

DATA = os.environ.get("TERN_DATA", "../shared/data")
FW = os.path.join(DATA, "fineweb")
BIN = os.path.join(os.environ.get("TERN_BIN", "build/bin"), "tern")
train, val = os.path.join(FW, "fineweb_train_000000.bin"), os.path.join(FW, "fineweb_val_000000.bin")
if not os.path.exists(train):
    print(f"SKIP: {train} not found (set TERN_DATA)")
    sys.exit(0)


def load(p):
    return np.fromfile(p, dtype="<u2", offset=1024).astype(np.int64)


tr, va = load(train), load(val)
V, T = 1024, 1024
n = ((len(va) - 1) // T) * T
x, y = va[:n], va[1:n + 1]
uni = np.bincount(tr, minlength=V) + 0.5
uni /= uni.sum()
counts = np.zeros((V, V))
np.add.at(counts, (tr[:-1], tr[1:]), 1)
best = min(
    -np.log(((counts + a * V * uni[None, :]) / (counts.sum(1, keepdims=True) + a * V))[x, y]).mean()
    for a in (0.03, 0.1, 0.3, 1.0))

d = tempfile.mkdtemp(prefix="tern_fw_")
cfg = {
    "name": "fw", "out_dir": d, "seed": 1,
    "model": {"arch": "gpt", "layers": 4, "dim": 128, "heads": 4, "kv_heads": 2},
    "data": {"train": train, "val": val, "tokenizer": os.path.join(FW, "fineweb_1024_bpe.model"), "seq_len": 256},
    "optim": {"schedule": {"kind": "warmdown", "warmdown_steps": 80}},
    "train": {"batch_tokens": 4096, "micro_batch": 4, "max_steps": 200, "log_every": 50},
}
p = os.path.join(d, "cfg.json")
json.dump(cfg, open(p, "w"))
r = subprocess.run([BIN, "train", p, "--json"], capture_output=True, text=True)
if r.returncode:
    print(r.stderr)
    sys.exit(1)
s = json.loads(r.stdout.strip().splitlines()[-1])
# the bigram's bpb uses the bytes per token of tern's own evaluation windows
ev = subprocess.run([BIN, "eval", "--ckpt", os.path.join(d, "fw", "ckpt", "latest.h5"), "--data", val, "--json"],
                    capture_output=True, text=True)
if ev.returncode:
    print(ev.stderr)
    sys.exit(1)
e = json.loads(ev.stdout)
bpt = e["bytes"] / e["tokens"]
bigram_bpb = best / np.log(2) / bpt
limit = bigram_bpb - 0.1
ok = s["val_bpb"] < limit
print(f"  smoothed bigram baseline: {best:.4f} nats/token = {bigram_bpb:.4f} bpb ({bpt:.3f} bytes/token)")
print(f"  tern 4x128 GPT after {s['steps']} steps / {s['tokens']} tokens ({s['tok_per_s']:.0f} tok/s): "
      f"val_loss {s['val_loss']:.4f} val_bpb {s['val_bpb']:.4f} (T=256; tern eval: {e['val_bpb']:.4f})")
print(f"  required: val_bpb < {limit:.4f}  {'ok' if ok else 'FAIL'}")
subprocess.run(["rm", "-rf", d])
sys.exit(0 if ok else 1)
