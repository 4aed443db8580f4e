"""Fault injection: the Gated DeltaNet kind and the chimera preset (issue 13).

Bad gdn keys (ranges, an unknown kernel, a value width that is not a whole number, heads that do
not fit the width, an unknown layout letter) are one error line naming the key, with nothing
written; a chimera whose state and projections cannot fit the machine is refused before it
allocates; a tiny chimera trains, exports and evaluates in tern-run, which refuses the artifact cut
short with one line naming it. Each case: exit status in 1..127, no sanitizer report."""
import json
import os
import shutil
import tempfile

from fault_lib import Checks, expect_error, expect_ok, intact, snapshot, synthetic_language, tern, tern_run, write_shard

checks = Checks()
d = tempfile.mkdtemp(prefix="tern_faults_gdn_")
write_shard(os.path.join(d, "train_000000.bin"), synthetic_language(20000))
write_shard(os.path.join(d, "val_000000.bin"), synthetic_language(4000, seed=1))
runs = os.path.join(d, "runs")
cfg = {"name": "tiny", "out_dir": runs, "seed": 1,
       "model": {"arch": "chimera", "vocab_size": 64, "layout": "GS", "dim": 32, "gdn_head_dim": 8, "swiglu_hidden": 64,
                 "seq_len": 32, "gdn_chunk": 8},
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
    ("an unknown kernel", ["model.gdn_kernel=fast"], "model.gdn_kernel must be chunked or recurrent"),
    ("chunk 0", ["model.gdn_chunk=0"], "model.gdn_chunk must be in [1, 4096]"),
    ("conv 17", ["model.gdn_conv=17"], "model.gdn_conv must be in [0, 16]"),
    ("head dim 0", ["model.gdn_head_dim=0"], "model.gdn_head_dim must be in [1, 4096]"),
    ("expand_v 1.3 of 8", ["model.gdn_expand_v=1.3"], "model.gdn_expand_v (1.3) times model.gdn_head_dim (8)"),
    ("expand_v past its range", ["model.gdn_expand_v=100"], "model.gdn_expand_v must be in [0.0625, 16]"),
    ("head dim above the width", ["model.gdn_head_dim=64"], "model.gdn_heads is 0 and model.dim (32) is below"),
    ("an unknown letter", ["model.layout=GQG"], "model.layout of chimera may only hold G"),
    ("NaN expand_v", ["model.gdn_expand_v=NaN"], "model.gdn_expand_v must be a number"),
]
for what, sets, name in CASES:
    expect_error(checks, train(*sets, extra=["--dry-run"]), what, names=[name], allow_lines=1)
checks(not os.path.exists(runs), "config errors: no run folder written")

r = train("model.gdn_heads=4096", "model.gdn_head_dim=4096", "model.gdn_expand_v=16")
expect_error(checks, r, "4096 heads of 4096 x 65536 (a model that cannot fit)", names=["parameters", "need", "available"], allow_lines=1)
checks(not os.path.exists(runs) or not os.listdir(runs), "memory refusal: no run folder written")

# a tiny chimera end to end, then a truncated artifact (its Gated DeltaNet tensors cut off)
if expect_ok(checks, tern("train", cfg_path, "--quiet", "--json", timeout=300), "tiny chimera trains"):
    art = os.path.join(d, "tiny.tern")
    if expect_ok(checks, tern("export", "--ckpt", os.path.join(runs, "tiny", "ckpt", "latest.h5"), "-o", art,
                              "--zstd-level", "1", timeout=120), "export"):
        val = os.path.join(d, "val_000000.bin")
        expect_ok(checks, tern_run("eval", art, "--data", val, "--threads", "1"), "tern-run eval of the chimera")
        cut = os.path.join(d, "cut.tern")
        with open(art, "rb") as f:
            data = f.read()
        with open(cut, "wb") as f:
            f.write(data[:len(data) * 3 // 4])
        before = snapshot(d)
        expect_error(checks, tern_run("eval", cut, "--data", val), "a truncated chimera artifact", names=[cut], allow_lines=1)
        intact(checks, d, before, "truncated artifact")

shutil.rmtree(d, ignore_errors=True)
checks.finish("faults_gdn")
