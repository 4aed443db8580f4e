"""Fault injection: the MoE channel mixer (the moe kind, chimera's letter E).

Bad moe keys (ranges, top-k above the experts, NaN rate, no hidden size) are one error line naming
the key, with nothing written; a tiny chimera with MoE layers trains; a checkpoint whose routing
bias (a buffer) holds a NaN is refused with one line naming the buffer by resume, eval and export,
and the run folder is left as it was. Each case: exit status in 1..127, no sanitizer report."""
import json
import os
import shutil
import tempfile

import h5py
from fault_lib import Checks, expect_error, expect_ok, intact, snapshot, synthetic_language, tern, write_shard

checks = Checks()
d = tempfile.mkdtemp(prefix="tern_faults_moe_")
write_shard(os.path.join(d, "train_000000.bin"), synthetic_language(20000))
write_shard(os.path.join(d, "val_000000.bin"), synthetic_language(4000, seed=1))
runs = os.path.join(d, "runs")
cfg = {"name": "tiny", "out_dir": runs, "seed": 1,
       "model": {"arch": "chimera", "vocab_size": 64, "layout": "GE", "dim": 32, "gdn_head_dim": 8, "swiglu_hidden": 64,
                 "seq_len": 32, "gdn_chunk": 8, "moe_experts": 4, "moe_hidden": 32},
       "data": {"train": os.path.join(d, "train_*.bin"), "val": os.path.join(d, "val_*.bin"), "seq_len": 32},
       "train": {"batch_tokens": 64, "micro_batch": 2, "max_steps": 2, "log_every": 1}}
cfg_path = os.path.join(d, "tiny.json")
with open(cfg_path, "w") as f:
    json.dump(cfg, f)


def train(*sets, extra=()):
    args = ["train", cfg_path, *extra]
    for s in sets:
        args += ["--set", s]
    return tern(*args, timeout=120)


CASES = [
    ("top-k above the experts", ["model.moe_topk=5"], "model.moe_topk (5) must be at most model.moe_experts (4)"),
    ("no experts", ["model.moe_experts=0"], "model.moe_experts must be in [1, 256]"),
    ("257 experts", ["model.moe_experts=257"], "model.moe_experts must be in [1, 256]"),
    ("17 shared experts", ["model.moe_shared=17"], "model.moe_shared must be in [0, 16]"),
    ("a negative bias rate", ["model.moe_bias_rate=-0.1"], "model.moe_bias_rate must be in [0, 1]"),
    ("a NaN bias rate", ["model.moe_bias_rate=NaN"], "model.moe_bias_rate must be a number"),
    ("route scale 0", ["model.moe_route_scale=0"], "model.moe_route_scale must be in [1e-06, 1000]"),
    ("no hidden size", ["model.moe_hidden=0", "model.mlp_mult=0"], "model.moe_hidden or model.mlp_mult must be positive"),
    ("a misspelt key", ["model.moe_expert=8"], "unknown key model.moe_expert"),
]
for what, sets, name in CASES:
    expect_error(checks, train(*sets, extra=["--dry-run"]), what, names=[name], allow_lines=1)
checks(not os.path.exists(runs), "config errors: no run folder written")

if expect_ok(checks, tern("train", cfg_path, "--quiet", "--json", timeout=300), "tiny chimera with an MoE layer trains"):
    ckpt = os.path.join(runs, "tiny", "ckpt", "latest.h5")
    with h5py.File(ckpt, "r") as f:
        checks("buffers/blocks.1.moe.bias" in f and f["buffers/blocks.1.moe.bias"].shape == (4,),
               "the routing bias is in the checkpoint (buffers/blocks.1.moe.bias, 4 values)")
    real = os.path.realpath(ckpt)
    with h5py.File(real, "r+") as f:
        ds = f["buffers/blocks.1.moe.bias"]
        v = ds[...]
        v[2] = float("nan")
        ds[...] = v
    before = snapshot(d)
    name = "buffer blocks.1.moe.bias holds a non-finite value"
    expect_error(checks, tern("train", "--resume", os.path.join(runs, "tiny"), "--set", "train.max_steps=4", timeout=120),
                 "resume from a NaN routing bias", names=[name])
    expect_error(checks, tern("eval", "--ckpt", ckpt, "--data", os.path.join(d, "val_000000.bin"), timeout=120),
                 "eval of a NaN routing bias", names=[name], allow_lines=1)
    expect_error(checks, tern("export", "--ckpt", ckpt, "-o", os.path.join(d, "x.tern"), timeout=120),
                 "export of a NaN routing bias", names=[name], allow_lines=1)
    checks(not os.path.exists(os.path.join(d, "x.tern")), "no artifact written")
    intact(checks, d, before, "NaN routing bias")

shutil.rmtree(d, ignore_errors=True)
checks.finish("faults_moe")
