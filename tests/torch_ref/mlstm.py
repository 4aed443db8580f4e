"""PyTorch parity of tern's mlstm block (model/blocks/mlstm.c) against mlstm_ref.py, a float64
twin written from the xLSTM paper's equations (naive stabilised recurrence, autograd). Same
weights (tern's init, perturbed so that the zero-initialised gate weights and unit gains are
exercised), same input and upstream gradient: the output, the input's gradient and every
parameter's gradient agree within 1e-4 (max |tern - ref| / max(max |ref|, 1e-3) per tensor).
Cases: each training form (chunkwise with T not a multiple of the chunk, parallel, recurrent), both
forget gates, T = 1, and the default head size 64 over two chunks."""
import json
import os
import subprocess
import tempfile

import h5py
import numpy as np
import torch

from common import REFDUMP, finish, rel_err
import common
from mlstm_ref import mlstm_block

torch.set_num_threads(2)
rng = np.random.default_rng(5)
TOL = 1e-4


def refdump_block(kind, cfg, x, dout, seed=3, perturb=0.2):
    with tempfile.TemporaryDirectory() as d:
        fin, fout = os.path.join(d, "in.h5"), os.path.join(d, "out.h5")
        with h5py.File(fin, "w") as f:
            f["x"] = x.astype(np.float32)
            f["dout"] = dout.astype(np.float32)
            f.attrs["kind"] = kind
            f.attrs["cfg"] = json.dumps(cfg)
            f.attrs["seed"] = float(seed)
            f.attrs["perturb"] = float(perturb)
        r = subprocess.run([REFDUMP, "block_init", fin, fout], capture_output=True, text=True)
        if r.returncode:
            print(r.stdout, r.stderr)
            raise SystemExit("FAIL: refdump block_init")
        with h5py.File(fout, "r") as f:
            out = {}
            f.visititems(lambda n, o: out.__setitem__(n, np.array(o)) if isinstance(o, h5py.Dataset) else None)
            return out


def check(name, ours, ref):
    """rel_err with an absolute floor of 1e-3 (a reference that is ~0 is not divided by ~0)."""
    rel = rel_err(ours, ref, 1e-3)[1]
    ok = rel <= TOL and np.all(np.isfinite(ours))
    if not ok:
        common.failures += 1
    return rel, ok


def run_case(tag, cfg, B, T, C):
    x = rng.standard_normal((B, T, C))
    dout = rng.standard_normal((B, T, C))
    got = refdump_block("mlstm", cfg, x, dout)
    prefix = "params/blocks.0.mlstm."
    p = {n[len(prefix):]: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in got.items() if n.startswith(prefix)}
    xt = torch.tensor(x.astype(np.float32), dtype=torch.float64, requires_grad=True)
    rc = dict(head_dim=cfg.get("mlstm_head_dim", 64), qkv_block=cfg.get("mlstm_qkv_block", 4), conv=cfg.get("mlstm_conv", 4),
              exp_forget=cfg.get("mlstm_forget") == "exp", norm_eps=1e-5)
    y = mlstm_block(xt, p, rc)
    y.backward(torch.tensor(dout.astype(np.float32), dtype=torch.float64))
    rows = [("y", got["y"], y.detach().numpy()), ("dx", got["dx"], xt.grad.numpy())]
    rows += [(f"d {n}", got["grads/blocks.0.mlstm." + n], t.grad.numpy()) for n, t in p.items()]
    worst, bad = 0.0, []
    for n, ours, ref in rows:
        rel, ok = check(n, ours, ref)
        worst = max(worst, rel)
        if not ok:
            bad.append(f"{n} ({rel:.2e})")
    print(f"  {tag:58s} {len(rows)} tensors, worst rel {worst:.2e} (tol {TOL:.0e})  {'ok' if not bad else 'FAIL: ' + ', '.join(bad)}")


BASE = dict(mlstm_head_dim=4, mlstm_qkv_block=2, mlstm_conv=4, mlstm_chunk=4, mlstm_proj_factor=2.0)
print("tern mlstm block vs the float64 paper-equation reference (output, dx, every parameter)")
run_case("chunkwise L4, T13, dim 6 (inner 12, 3 heads), sigmoid", dict(BASE, mlstm_proj_factor=2.0), 2, 13, 6)
run_case("chunkwise L3, T1", dict(BASE, mlstm_chunk=3), 1, 1, 6)
run_case("parallel, T9, exp forget gate", dict(BASE, mlstm_form="parallel", mlstm_forget="exp", mlstm_fgate_bias_lo=-0.5,
                                                 mlstm_fgate_bias_hi=0.2), 2, 9, 8)
run_case("recurrent (segments of 5), T11, conv 3, qkv_block 4", dict(BASE, mlstm_form="recurrent", mlstm_chunk=5, mlstm_conv=3,
                                                                   mlstm_qkv_block=4), 1, 11, 8)
run_case("chunkwise L64, T100, head 64 (2 heads), dim 64", dict(mlstm_chunk=64), 1, 100, 64)
finish("torch_mlstm")
