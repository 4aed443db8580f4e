"""End to end, activation checkpointing (train.checkpoint_blocks): the same run with and without
it logs identical training losses and ends with identical parameters (a GPT with U-Net skips and
resid_mix, and a chimera G X E stack with MoE, several micro-steps per step); the resolved config
records the key; a non-boolean value is one error line."""
import json
import os
import subprocess
import tempfile

import h5py
import numpy as np
from e2e_common import Checks, synthetic_language, write_shard

BIN = os.path.join(os.environ.get("TERN_BIN", "build/bin"), "tern")
check = Checks()


def tern(*args, timeout=300):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def losses(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [(o["step"], o["train_loss"]) for o in rows if "train_loss" in o]


def params(run_dir):
    out = {}
    with h5py.File(os.path.join(run_dir, "ckpt", "latest.h5"), "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, np.array(obj)) if isinstance(obj, h5py.Dataset) else None)
    return out


d = tempfile.mkdtemp(prefix="tern_e2e_ckpt_")
seq = synthetic_language(30000)
write_shard(os.path.join(d, "syn_train_000000.bin"), seq[:26000])
write_shard(os.path.join(d, "syn_val_000000.bin"), seq[26000:])
MODELS = {
    "gpt": {"arch": "gpt", "vocab_size": 64, "layers": 4, "dim": 32, "heads": 2, "kv_heads": 1},
    "chimera": {"arch": "chimera", "layout": "GXE", "vocab_size": 64, "dim": 16, "gdn_heads": 2, "gdn_head_dim": 8,
                "swiglu_hidden": 24, "moe_experts": 4, "moe_topk": 2, "moe_hidden": 12},
}
for arch, model in MODELS.items():
    cfg = {
        "name": "r", "out_dir": os.path.join(d, "runs"), "seed": 5, "model": model,
        "data": {"train": os.path.join(d, "syn_train_*.bin"), "val": os.path.join(d, "syn_val_*.bin"), "seq_len": 32},
        "train": {"batch_tokens": 256, "micro_batch": 4, "max_steps": 3, "log_every": 1, "plot": False},
    }
    path = os.path.join(d, f"{arch}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    runs = {}
    for ck in ("false", "true"):
        name = f"{arch}_{ck}"
        r = tern("train", path, "--set", f"name={name}", "--set", f"train.checkpoint_blocks={ck}")
        check(r.returncode == 0, f"{arch} checkpoint_blocks={ck} trains: {r.stderr.strip()[-300:]}")
        runs[ck] = os.path.join(d, "runs", name)
    if not all(os.path.exists(os.path.join(p, "metrics.jsonl")) for p in runs.values()):
        continue
    la, lb = losses(runs["false"]), losses(runs["true"])
    print(f"{arch}: losses without {la}\n{' ' * len(arch)}  with    {lb}")
    check(len(la) == 3 and la == lb, f"{arch}: identical training losses with and without checkpointing")
    pa, pb = params(runs["false"]), params(runs["true"])
    same = pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)
    check(same and len(pa) > 0, f"{arch}: identical checkpoints after 3 steps ({len(pa)} datasets)")
    with open(os.path.join(runs["true"], "config.json")) as f:
        check(json.load(f)["train"].get("checkpoint_blocks") is True, f"{arch}: config.json records train.checkpoint_blocks")

r = tern("train", os.path.join(d, "gpt.json"), "--set", "train.checkpoint_blocks=2", "--dry-run")
check(r.returncode == 1 and "train.checkpoint_blocks must be true or false" in r.stderr and r.stderr.count("\n") == 1,
      f"non-boolean value: {r.stderr.strip()}")
check.finish("train_ckpt")
