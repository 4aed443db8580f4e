"""PyTorch parity of tern's Hybrid-GRU stacks (arch hgru, hgru_engine) against gru_ref.py. Same
weights (tern's initial parameters, written by refdump to HDF5 and read with h5py), same batch:
  - the `torch` GRU cell against torch.nn.GRU itself, in float32 and float64;
  - the engine's cell and the MLGRU against float64 references written from their formulas;
the loss within 1e-5 relative and every parameter's gradient within 1e-4 (max |diff| / max |ref|
per tensor). Cases: single GRU blocks of each cell (odd sizes, keep bias and biases off their
init), stacks mixing GRU, MLGRU and MLPs, the engine's shape (a 256 -> 1024 style widening first
layer, scaled down), and an MLGRU as the widening first layer."""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

import common
from common import REFDUMP, compare, finish, rel_err
from gru_ref import Stack

torch.set_num_threads(2)
rng = np.random.default_rng(3)


def refdump_model(model_cfg, x, y):
    with tempfile.TemporaryDirectory() as d:
        fin, fout = os.path.join(d, "in.h5"), os.path.join(d, "out.h5")
        with h5py.File(fin, "w") as f:
            f["x"] = x.astype(np.float32)
            f["y"] = y.astype(np.float32)
            f.attrs["steps"] = 0.0
            f.attrs["seed"] = 5.0
            f.attrs["model"] = json.dumps(model_cfg)
            f.attrs["optim"] = "{}"
        r = subprocess.run([REFDUMP, "model", fin, fout], capture_output=True, text=True)
        if r.returncode:
            print(r.stdout, r.stderr)
            raise SystemExit("FAIL: refdump model")
        with h5py.File(fout, "r") as f:
            def collect(group):
                out = {}
                f[group].visititems(lambda n, o: out.__setitem__(n, np.array(o)) if isinstance(o, h5py.Dataset) else None)
                return out
            return collect("params0"), collect("grads"), float(np.array(f["loss"])[0])


def resolved(model_cfg):
    """the keys the reference reads, with the presets' defaults"""
    engine = model_cfg["arch"] == "hgru_engine"
    c = {"gru_variant": "engine" if engine else "torch", "gru_state_eps": 1e-8, "norm_eps": 0.0, "emb_norm": False,
         "softcap": 0.0 if engine else 30.0, "dim": 1024 if engine else 512}
    c.update(model_cfg)
    c.setdefault("embed_dim", c["dim"])
    return c


def run_case(tag, model_cfg, B, T, float32_ref=False):
    V = model_cfg["vocab_size"]
    x = rng.integers(0, V, size=(B, T))
    y = rng.integers(0, V, size=(B, T))
    p0, grads, loss = refdump_model(model_cfg, x, y)
    cfg = resolved(model_cfg)
    dtypes = [torch.float64] + ([torch.float32] if float32_ref else [])
    for dt in dtypes:
        ref = Stack(p0, cfg, dt)
        l = ref(torch.from_numpy(x), torch.from_numpy(y))
        l.backward()
        g = ref.grads()
        name = f"{tag} vs {'nn.GRU ' if cfg['gru_variant'] == 'torch' and 'G' in cfg['layout'].upper() else ''}" \
               f"{'float64' if dt == torch.float64 else 'float32'}"
        assert set(g) == set(grads), f"parameter names differ: {sorted(set(g) ^ set(grads))}"
        compare(f"{name}: loss", [loss], [l.item()], 1e-5, 1.0)
        # A tensor's scale is floored at 1e-3 of the model's largest gradient, so that a gradient
        # that is zero or nearly so (an unused row, T = 1) is not divided by ~0.
        floor = 1e-3 * max(float(np.max(np.abs(v))) for v in g.values())
        worst, worst_name = 0.0, ""
        for n in grads:
            e = rel_err(grads[n], g[n], floor)[1]
            if e > worst or not np.all(np.isfinite(grads[n])):
                worst, worst_name = (e if np.all(np.isfinite(grads[n])) else np.inf), n
        ok = worst <= 1e-4
        print(f"  {name}: every gradient ({len(grads)} tensors), worst relative {worst:.2e} ({worst_name})  "
              f"{'ok' if ok else 'FAIL'}")
        if not ok:
            common.failures += 1


SMALL = {"vocab_size": 37, "seq_len": 16, "embed_init_std": 0.5, "zero_init_proj": False, "layers": 0}


def main():
    if not os.path.exists(REFDUMP):
        raise SystemExit(f"FAIL: {REFDUMP} not built")
    biased = {"gru_keep_bias": 1.0, "gru_xavier_gain": 0.0}  # nn.GRU's own init: biases off zero
    run_case("GRU block, torch cell (g, dim 13)", dict(SMALL, arch="hgru", layout="g", dim=13, **biased), 2, 11,
             float32_ref=True)
    run_case("GRU + MLP, torch cell, 2 layers (GG, dim 24)", dict(SMALL, arch="hgru", layout="GG", dim=24, mlp_hidden=40), 3, 9,
             float32_ref=True)
    run_case("GRU block, engine cell (g, dim 13)", dict(SMALL, arch="hgru", layout="g", dim=13, gru_variant="engine", **biased),
             2, 11)
    run_case("engine shape: embed 12 -> engine GRU 20, untied head",
             dict(SMALL, arch="hgru_engine", layout="g", embed_dim=12, dim=20, gru_keep_bias=0.5), 2, 10)
    run_case("MLGRU blocks (Mm, dim 16)", dict(SMALL, arch="hgru", layout="Mm", dim=16, mlp_hidden=24), 2, 12)
    run_case("mixed: MLGRU widening 8 -> 16, torch GRU, engine-free (mG)",
             dict(SMALL, arch="hgru", layout="mG", embed_dim=8, dim=16, tie_embeddings=False, mlp_hidden=24), 2, 9)
    finish("torch_gru")


if __name__ == "__main__":
    main()
