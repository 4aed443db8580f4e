"""Fault injection: the mlstm block kind (chimera preset, X layers; issue 13).

Bad mlstm keys are one error line naming the key, before anything is written (a qkv block that
does not divide the inner width, an inner width past the range, unknown form / forget gate names,
out-of-range sizes). A run whose exponential forget gates have bias 1e3 (log f = 1000 per step)
stays finite: the stabiliser of the empty state is -inf (with 0, every token's weight underflowed
and h was 0 / 0: "non-finite steps"). Damaged mlstm key/values in an artifact are covered by
tests/unit/test_runtime_mlstm.c. Each case: exit status in 1..127, no sanitizer report."""
import json
import os
import shutil
import tempfile

from fault_lib import Checks, expect_error, expect_ok, intact, snapshot, synthetic_language, tern, tern_run, write_shard

checks = Checks()
d = tempfile.mkdtemp(prefix="tern_faults_mlstm_")
write_shard(os.path.join(d, "train_000000.bin"), synthetic_language(20000))
write_shard(os.path.join(d, "val_000000.bin"), synthetic_language(4000, seed=1))
runs = os.path.join(d, "runs")
cfg = {"name": "xm", "out_dir": runs, "seed": 1,
       "model": {"arch": "chimera", "vocab_size": 64, "layout": "XX", "dim": 32, "seq_len": 32, "mlstm_head_dim": 16,
                 "mlstm_chunk": 8},
       "data": {"train": os.path.join(d, "train_*.bin"), "val": os.path.join(d, "val_*.bin"), "seq_len": 32},
       "train": {"batch_tokens": 64, "micro_batch": 2, "max_steps": 2, "log_every": 1, "val_every": 0, "eval_at_end": False}}
cfg_path = os.path.join(d, "xm.json")
with open(cfg_path, "w") as f:
    json.dump(cfg, f)


def train(*sets, extra=()):
    args = ["train", cfg_path, *extra]
    for s in sets:
        args += ["--set", s]
    return tern(*args, timeout=120)


CASES = [
    ("unknown form", "model.mlstm_form=\"fast\"", "model.mlstm_form must be chunkwise, parallel or recurrent"),
    ("unknown forget gate", "model.mlstm_forget=\"tanh\"", "model.mlstm_forget must be sigmoid or exp"),
    ("head dim 0", "model.mlstm_head_dim=0", "model.mlstm_head_dim must be in [1, 4096]"),
    ("qkv block not dividing the inner width", "model.mlstm_qkv_block=5", "model.mlstm_qkv_block (5) must divide"),
    ("conv kernel 65", "model.mlstm_conv=65", "model.mlstm_conv must be in [1, 64]"),
    ("chunk 0", "model.mlstm_chunk=0", "model.mlstm_chunk must be in [1, "),
    ("proj factor 1e9", "model.mlstm_proj_factor=1e9", "model.mlstm_proj_factor must be in [0.01, 64]"),
    ("inner width past the range", "model.mlstm_proj_factor=64", "mLSTM inner width"),
    ("norm eps NaN", "model.mlstm_norm_eps=NaN", "model.mlstm_norm_eps must be a number"),
]
for what, s, name in CASES:
    if what == "inner width past the range":
        r = train(s, "model.dim=32768", extra=["--dry-run"])
    else:
        r = train(s, extra=["--dry-run"])
    expect_error(checks, r, what, names=[name], allow_lines=1)
checks(not os.path.exists(runs) or not os.listdir(runs), "config errors: no run folder written")

# ---- a good run, then one whose exponential forget gates overflow
r = train(extra=["--quiet"])
expect_ok(checks, r, "control: a tiny chimera XX trains 2 steps")
ckpt_dir = os.path.join(runs, "xm")
before = snapshot(ckpt_dir)
r = train("name=\"xm_exp\"", "model.mlstm_forget=\"exp\"", "model.mlstm_fgate_bias_lo=1e3", "model.mlstm_fgate_bias_hi=1e3",
          extra=["--quiet"])
expect_ok(checks, r, "exp forget gates at bias 1e3: the stabiliser keeps the run finite (m of the empty state is -inf)")
intact(checks, ckpt_dir, before, "the good run")

# ---- the run exports and the runtime reads it
art = os.path.join(d, "xm.tern")
expect_ok(checks, tern("export", "--ckpt", os.path.join(ckpt_dir, "ckpt", "latest.h5"), "-o", art), "control: export")
expect_ok(checks, tern_run("info", art), "control: tern-run info")
if not checks.failures:
    shutil.rmtree(d, ignore_errors=True)
checks.finish("faults_mlstm")
