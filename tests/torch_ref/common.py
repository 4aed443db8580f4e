"""Shared plumbing for the PyTorch parity tests: write inputs, run tern's refdump, compare.

Run with Debian's python3 (python3-torch 1.13, numpy, h5py). A missing torch is a failure,
not a skip: these tests are the reference the C code is held to."""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover
    print("FAIL: python3-torch is not installed (apt-get install python3-torch)")
    sys.exit(1)

BUILD = os.environ.get("TERN_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
REFDUMP = os.path.join(BUILD, "tests", "refdump")

failures = 0


def run_refdump(case, inputs, attrs=None):
    """Writes inputs (dict name -> array) and attrs to an HDF5 file, runs refdump, returns outputs."""
    with tempfile.TemporaryDirectory() as d:
        fin, fout = os.path.join(d, "in.h5"), os.path.join(d, "out.h5")
        with h5py.File(fin, "w") as f:
            for k, v in inputs.items():
                f[k] = np.asarray(v, dtype=np.float32)
            for k, v in (attrs or {}).items():
                f.attrs[k] = float(v)
        r = subprocess.run([REFDUMP, case, fin, fout], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            raise SystemExit(f"FAIL: refdump {case} exited with {r.returncode}")
        with h5py.File(fout, "r") as f:
            return {k: np.array(f[k]) for k in f.keys()}


def rel_err(ours, ref, floor):
    """max |ours - ref| / max(max |ref|, floor). The floor is the scale below which a difference is
    float32 rounding of the computation rather than an error (the largest gradient of the same
    backward pass, a loss's 1 nat, ...): a reference that is zero or nearly so (dq at T = 1) is
    then not divided by ~0."""
    ours = np.asarray(ours, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    err = np.max(np.abs(ours - ref)) if ours.size else 0.0
    return err, err / max(np.max(np.abs(ref)) if ref.size else 0.0, floor)


def compare(name, ours, ref, rel_tol, floor):
    """Passes when rel_err(ours, ref, floor) <= rel_tol and ours is finite."""
    global failures
    ours = np.asarray(ours, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if ours.shape != ref.shape:
        print(f"  {name:40s} shape mismatch {ours.shape} vs {ref.shape}  FAIL")
        failures += 1
        return
    err, rel = rel_err(ours, ref, floor)
    ok = rel <= rel_tol and np.all(np.isfinite(ours))
    print(f"  {name:40s} n={ours.size:<9d} max|diff| {err:.3e}  rel {rel:.3e} (tol {rel_tol:.0e})  {'ok' if ok else 'FAIL'}")
    if not ok:
        failures += 1


def finish(name):
    if failures:
        print(f"{name}: {failures} comparison(s) FAILED")
        sys.exit(1)
    print(f"{name}: all comparisons passed")
