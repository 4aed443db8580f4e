"""Fault injection, LoRA fine-tuning (train.lora, tern export --merge-lora): every bad key, value,
target or base is one error line naming it and a non-zero exit, with no run folder created and
the base run untouched; a LoRA checkpoint whose stored base hash was damaged or whose base is
missing is refused by eval and export. Tiny runs (a 1-layer, 16-wide GPT): seconds."""
import json
import os
import tempfile

import h5py
from fault_lib import Checks, expect_error, expect_ok, intact, snapshot, synthetic_language, tern, write_shard

check = Checks()
d = tempfile.mkdtemp(prefix="tern_faults_lora_")
runs = os.path.join(d, "runs")
seq = synthetic_language(6000)
write_shard(os.path.join(d, "syn_train_000000.bin"), seq[:5000])
write_shard(os.path.join(d, "syn_heldout_000000.bin"), seq[5000:])
cfg = {
    "name": "base", "out_dir": runs, "seed": 3, "threads": 1,
    "model": {"arch": "gpt", "vocab_size": 64, "layers": 1, "dim": 16, "heads": 2, "kv_heads": 1},
    "data": {"train": os.path.join(d, "syn_train_*.bin"), "val": os.path.join(d, "syn_heldout_*.bin"), "seq_len": 16},
    "train": {"batch_tokens": 64, "micro_batch": 4, "max_steps": 2, "log_every": 1, "val_every": 0, "val_tokens": 128},
}
cfg_path = os.path.join(d, "cfg.json")
with open(cfg_path, "w") as f:
    json.dump(cfg, f)
base_ck = os.path.join(runs, "base", "ckpt", "latest.h5")
expect_ok(check, tern("train", cfg_path, "--quiet"), "the base trains")
before = snapshot(runs)
good = {"rank": 2, "alpha": 4, "base": base_ck}


def lora(name, **kw):
    sec = dict(good, **kw)
    return tern("train", cfg_path, "--quiet", "--set", f"name={name}", "--set", "train.lora=" + json.dumps(sec))


print("train.lora keys")
cases = [
    ("unknown key", {"ranks": 4}, "train.lora.ranks"),
    ("rank 0", {"rank": 0}, "train.lora.rank"),
    ("rank not an integer", {"rank": 2.5}, "train.lora.rank"),
    ("negative alpha", {"alpha": -1}, "train.lora.alpha"),
    ("dropout 1", {"dropout": 1.0}, "train.lora.dropout"),
    ("base missing", {"base": ""}, "train.lora.base"),
    ("base_hash not hex", {"base_hash": "xyz"}, "train.lora.base_hash"),
    ("targets not an array", {"targets": "*.attn.c_q.weight"}, "train.lora.targets"),
    ("targets empty", {"targets": []}, "train.lora.targets"),
    ("a target not a string", {"targets": [3]}, "train.lora.targets[0]"),
    ("targets match nothing", {"targets": ["*.nothing.weight"]}, "train.lora.targets"),
    ("a target that is an embedding", {"targets": ["tok_emb.weight"]}, "tok_emb.weight"),
    ("base file missing", {"base": os.path.join(d, "nope.h5")}, "nope.h5"),
    ("base not a checkpoint", {"base": cfg_path}, "train.lora.base"),
    ("base hash mismatch", {"base_hash": "0123456789abcdef"}, "0123456789abcdef"),
]
for i, (what, kw, name) in enumerate(cases):
    expect_error(check, lora(f"bad{i}", **kw), f"{what} refused", names=(name,), allow_lines=1)
    check(not os.path.exists(os.path.join(runs, f"bad{i}")), f"  no run folder for '{what}'")
r = tern("train", cfg_path, "--quiet", "--set", "name=both", "--set", "train.lora=" + json.dumps(good), "--set", f"train.init_from={base_ck}")
expect_error(check, r, "train.init_from with train.lora refused", names=("train.init_from",), allow_lines=1)
r = tern("train", cfg_path, "--quiet", "--set", "name=shape", "--set", "train.lora=" + json.dumps(good), "--set", "model.dim=32")
expect_error(check, r, "a base of another shape refused", names=("train.lora.base",), allow_lines=1)

print("LoRA checkpoints")
expect_ok(check, lora("ok"), "a good LoRA run")
lck = os.path.join(runs, "ok", "ckpt", "latest.h5")
art = os.path.join(d, "m.tern")
expect_error(check, tern("export", "--ckpt", lck, "-o", art), "export of a LoRA checkpoint without --merge-lora", names=("--merge-lora",), allow_lines=1)
expect_error(check, tern("export", "--ckpt", base_ck, "--merge-lora", "-o", art), "--merge-lora on a plain checkpoint", names=("--merge-lora",), allow_lines=1)
expect_error(check, tern("export", "--ckpt", base_ck, "--base", base_ck, "-o", art), "--base without --merge-lora", names=("--base",), allow_lines=1)
expect_error(check, tern("export", "--ckpt", lck, "--merge-lora", "--base", os.path.join(d, "nope.h5"), "-o", art),
             "--base that does not exist", names=("nope.h5",), allow_lines=1)
check(not os.path.exists(art), "no artifact written by the refused exports")
# the stored config's base hash damaged (h5py rewrites the root attribute)
damaged = os.path.join(d, "damaged.h5")
with open(lck, "rb") as src, open(damaged, "wb") as dst:
    dst.write(src.read())
with h5py.File(damaged, "r+") as f:
    c = json.loads(f.attrs["config"])
    c["train"]["lora"]["base_hash"] = "ffffffffffffffff"
    f.attrs["config"] = json.dumps(c)
expect_error(check, tern("eval", "--ckpt", damaged, "--data", os.path.join(d, "syn_heldout_000000.bin")),
             "eval of a LoRA checkpoint whose base hash does not match", names=("ffffffffffffffff",), allow_lines=1)
with h5py.File(damaged, "r+") as f:
    c["train"]["lora"]["base_hash"] = ""
    f.attrs["config"] = json.dumps(c)
expect_error(check, tern("export", "--ckpt", damaged, "--merge-lora", "-o", art), "a LoRA checkpoint without a base hash",
             names=("base_hash",), allow_lines=1)
intact(check, os.path.join(runs, "base"), {k[len("base/"):]: v for k, v in before.items() if k.startswith("base/")}, "the base run is intact")
check.finish("faults_lora")
