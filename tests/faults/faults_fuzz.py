"""The bugs the fuzz harnesses found (tests/fuzz/README.md), as the command line meets them, so
that the gcc build and `make test-sanitize` (ASan + UBSan) guard them too where clang's libFuzzer
is missing: an .h5 shard declaring 2^40 never-written tokens, an array where a checkpoint
attribute holds one value, a stored seed beyond 2^64, a GGUF integer stored as a huge float, a
resumed loader cursor far past the data's windows, a config key holding a newline."""
import json
import os
import tempfile

import sys

import h5py
import numpy as np
from fault_lib import Checks, expect_error, expect_ok, synthetic_language, tern, write_shard

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz"))
from make_seeds import gguf_file  # noqa: E402

checks = Checks()
d = tempfile.mkdtemp(prefix="tern_faults_fuzz_")
TINY = {"arch": "gpt", "vocab_size": 64, "layers": 1, "dim": 16, "heads": 2, "kv_heads": 1, "seq_len": 16}


def checkpoint_file(path, config, version=1):
    """The root of a tern checkpoint as h5py writes it (no parameters)."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "tern-checkpoint"
        f.attrs["version"] = version
        f.attrs["config"] = json.dumps(config)


print("an .h5 shard declaring 2^40 tokens it does not store")
sparse = os.path.join(d, "sparse.h5")
with h5py.File(sparse, "w") as f:
    f.create_dataset("tokens", shape=(1 << 40,), dtype="<u4", chunks=(1024,))
expect_error(checks, tern("info", sparse), "refused, not read into a wrapped-size buffer", names=("sparse.h5", "tokens"), allow_lines=1)

print("a checkpoint whose version attribute is an array")
arr = os.path.join(d, "array_attr.h5")
checkpoint_file(arr, {"model": TINY}, version=np.array([1, 1, 1, 1, 1], dtype="<i8"))
expect_error(checks, tern("info", arr), "array attribute refused", names=("array_attr.h5",), allow_lines=1)

print("a checkpoint whose stored seed does not fit uint64")
seed = os.path.join(d, "bigseed.h5")
checkpoint_file(seed, {"seed": 1e20, "model": TINY})
expect_error(checks, tern("info", seed), "refused before converting it", names=("bigseed.h5", "seed"), allow_lines=1)

print("a GGUF whose embedding length is the float 1e31")
gguf = os.path.join(d, "huge.gguf")
with open(gguf, "wb") as f:
    f.write(gguf_file(3, [("general.architecture", 8, "llama"), ("llama.embedding_length", 12, 1e31)], []))
expect_error(checks, tern("import", gguf, "-o", os.path.join(d, "imported")), "refused before converting it",
             names=("huge.gguf", "embedding_length"), allow_lines=1)

print("a config key holding a newline")
cfg = os.path.join(d, "newline.json")
with open(cfg, "w") as f:
    f.write('{"model": {"a\\nb": 1}}')
expect_error(checks, tern("train", cfg, "--dry-run"), "one error line", names=("model.a",), allow_lines=1)

print("resuming with a loader cursor far past the data's windows")
seq = synthetic_language(3000)
write_shard(os.path.join(d, "t_train_000000.bin"), seq)
run_cfg = {"name": "r", "out_dir": os.path.join(d, "runs"), "model": TINY,
           "data": {"train": os.path.join(d, "t_train_*.bin"), "seq_len": 16},
           "train": {"batch_tokens": 64, "micro_batch": 4, "max_steps": 2, "log_every": 1, "eval_at_end": False}}
with open(os.path.join(d, "run.json"), "w") as f:
    json.dump(run_cfg, f)
if expect_ok(checks, tern("train", os.path.join(d, "run.json")), "a 2-step run"):
    latest = os.path.join(d, "runs", "r", "ckpt", "latest.h5")
    with h5py.File(latest, "r+") as f:
        f["state"].attrs["loader_pos"] = np.int64(1 << 62)
    r = tern("train", "--resume", os.path.join(d, "runs", "r"), "--set", "train.max_steps=3", timeout=60)
    # the resume check (train/resume.c) refuses the cursor; the loader itself would wrap it by
    # division rather than loop (data/loader.c), which the loader's fuzz harness covers
    expect_error(checks, r, "a cursor far past the windows is refused, not looped over", names=("loader_pos",), allow_lines=1)

checks.finish("faults_fuzz")
