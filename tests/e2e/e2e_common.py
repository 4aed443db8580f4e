"""Helpers shared by the end-to-end tests (imported from the script's own folder)."""
import subprocess
import sys

import numpy as np


class Checks:
    """check(cond, what) prints one ok/FAIL line and counts failures; finish(name) reports and
    exits non-zero when anything failed."""

    def __init__(self):
        self.failures = 0

    def __call__(self, cond, what):
        print(f"  {'ok  ' if cond else 'FAIL'} {what}", flush=True)
        self.failures += not cond
        return cond

    def finish(self, name):
        print(f"{name}:", "FAILED" if self.failures else "all checks passed", f"({self.failures} failures)")
        sys.exit(1 if self.failures else 0)


def must_run(args, what, env=None, timeout=300):
    """Runs a command line; a failure prints its exit status and output tails and exits 1."""
    r = subprocess.run(list(args), capture_output=True, text=True, errors="replace", env=env, timeout=timeout)
    if r.returncode != 0:
        print(f"  FAIL {what}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        sys.exit(1)
    return r


def synthetic_text_shards(d, tern_bin, words, seed, docs, vocab, val_docs):
    """A corpus of `docs` documents of 20-60 random words (a seeded draw from `words`), a BPE
    tokenizer of `vocab` ids trained on it and its shards (d/shards/syn_{train,val}_*.bin, the last
    `val_docs` documents held out). Returns (tokenizer path, train glob, val glob)."""
    import os
    import random
    rng = random.Random(seed)
    os.makedirs(os.path.join(d, "txt"), exist_ok=True)
    corpus = os.path.join(d, "txt", "corpus.txt")
    with open(corpus, "w") as f:
        f.write("\n\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(20, 60))).capitalize() + "."
                             for _ in range(docs)))
    tok = os.path.join(d, "tok.bpe")
    must_run([tern_bin, "tokenizer", "train", corpus, "--vocab", str(vocab), "-o", tok], "tokenizer")
    must_run([tern_bin, "prepare", corpus, "--tokenizer", tok, "-o", os.path.join(d, "shards"), "--name", "syn", "--split",
              "blank", "--val-docs", str(val_docs)], "prepare")
    return tok, os.path.join(d, "shards", "syn_train_*.bin"), os.path.join(d, "shards", "syn_val_*.bin")


def write_shard(path, toks):
    """A parameter-golf shard: 256 little-endian int32 header (magic, version, count), uint16 tokens."""
    hdr = np.zeros(256, dtype="<i4")
    hdr[:3] = [20240520, 1, len(toks)]
    with open(path, "wb") as f:
        f.write(hdr.tobytes())
        f.write(np.asarray(toks, dtype="<u2").tobytes())


def synthetic_language(n, seed=0):
    """A learnable token stream over 64 symbols (BOS = 1 first): a noisy repeating pattern."""
    rng = np.random.default_rng(seed)
    return np.concatenate([[1], (np.arange(n) * 7 % 61 + 2 + (rng.random(n) < 0.1) * rng.integers(0, 3, n)) % 64])


# ---- running the tern binary (optionally under mpirun)
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402

BIN = os.path.join(os.environ.get("TERN_BIN", "build/bin"), "tern")
MPIEXEC = os.environ.get("TERN_MPIEXEC", "")  # empty when tern was built without MPI
# Open MPI refuses root unless told; shared-memory single-copy needs ptrace rights a container may lack
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none", OMPI_MCA_rmaps_base_oversubscribe="1")


def tern(*args, np_=None, timeout=300, env=None):
    """Runs `tern ARGS` (under `mpirun -np np_` when np_ is given) and returns the CompletedProcess."""
    cmd = [BIN, *args] if np_ is None else [MPIEXEC, "-np", str(np_), BIN, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or ENV)


def summary(r):
    """The --json summary line of a run, or {"err": tail of stderr} when it failed."""
    return json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"err": r.stderr[-500:]}


def metric(run_dir, key):
    """{step: value} of one key in a run's metrics.jsonl."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return {o["step"]: o[key] for o in map(json.loads, f) if key in o}
