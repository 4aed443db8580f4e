"""Helpers shared by the end-to-end tests (imported from the script's own folder)."""
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
