"""PyTorch parity of tern's Gated DeltaNet layer (the gdn block kind) against gdn_ref.py's float64
twin, written from the paper's recurrence token by token (autograd for the gradients). Same
weights and input (float32 values, written by this script and loaded by refdump's "block" case);
tern's output, d(input) and every parameter gradient must agree within 1e-4 of the tensor's
largest reference value (floor 1e-6, so that a tensor whose gradient is all but zero is held to
an absolute 1e-10). Cases: odd sizes, T = 1, T not a multiple of the chunk, the chunked and the
recurrent kernels, no convolution, d_v = 2 d_k. Also checks gdn_ref.py's chunked form (the
benchmark's PyTorch peer) against its recurrent form in float64."""
import json

import numpy as np
import torch

import common
from common import finish
from gdn_ref import Block, chunk_gated_delta, recurrent_gated_delta

torch.set_num_threads(2)
rng = np.random.default_rng(5)
FLOOR = 1e-6


def check(name, ours, ref, tol=1e-4):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64).reshape(np.shape(ours))
    err = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
    scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, FLOOR)
    ok = err <= tol * scale and np.all(np.isfinite(ours))
    if not ok or name.endswith("out"):
        print(f"  {name:44s} n={ref.size:<7d} max|diff| {err:.2e}  rel {err / scale:.2e} (tol {tol:.0e})  {'ok' if ok else 'FAIL'}")
    if not ok:
        common.failures += 1
    return err / scale


def refdump_block(block, h, dout, params):
    res = common.run_refdump("block", dict(h=h, dout=dout, **{"p/" + n: p for n, p in params.items()}),
                             {"block": json.dumps(block)})
    return res["out"], res["dh"], {n: res["g/" + n] for n in params}


def f32(x):
    return np.asarray(x, np.float32)


def run_case(tag, B, T, C, heads, dk, dv, conv=4, chunk=64, kernel="chunked"):
    eps = 1e-5
    model = Block(dim=C, heads=heads, dk=dk, dv=dv, conv=conv, norm_eps=eps).double()
    params = {}
    for n, p in model.named_parameters():
        if n.endswith("A_log"):
            v = np.log(rng.uniform(1.0, 16.0, p.shape))
        elif n.endswith("dt_bias"):
            dt = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), p.shape))
            v = dt + np.log(-np.expm1(-dt))
        elif n.endswith("o_norm.weight"):
            v = 1.0 + 0.2 * rng.standard_normal(p.shape)
        elif "conv1d" in n:
            v = rng.uniform(-0.6, 0.6, p.shape)
        elif n.endswith("a_proj.weight"):
            v = rng.standard_normal(p.shape) * 2.0 / np.sqrt(C)  # decays from ~0 to ~1
        else:
            v = rng.standard_normal(p.shape) / np.sqrt(p.shape[1])
        v = f32(v)
        with torch.no_grad():
            p.copy_(torch.from_numpy(v.astype(np.float64)))
        params[n] = v.reshape(v.shape[0], -1) if "conv1d" in n else v  # tern: [D, K]
    h, dout = f32(rng.standard_normal((B, T, C))), f32(rng.standard_normal((B, T, C)))
    block = {"kind": "gdn", "stack": {"dim": C, "norm_eps": eps},
             "cfg": {"gdn_heads": heads, "gdn_head_dim": dk, "gdn_expand_v": dv / dk, "gdn_conv": conv, "gdn_chunk": chunk,
                     "gdn_kernel": kernel}}
    out, dh, grads = refdump_block(block, h, dout, params)
    th = torch.from_numpy(h.astype(np.float64)).requires_grad_(True)
    y = model(th)
    y.backward(torch.from_numpy(dout.astype(np.float64)))
    print(f"{tag}: B{B} T{T} C{C} H{heads} dk{dk} dv{dv} conv{conv} chunk {chunk} {kernel}")
    worst = [check(f"{tag} out", out, y.detach().numpy()), check(f"{tag} dh", dh, th.grad.numpy())]
    for n, p in model.named_parameters():
        worst.append(check(f"{tag} d {n}", grads[n], p.grad.numpy()))
    print(f"  {tag}: worst over out, dh and {len(params)} parameter gradients: {max(worst):.2e} (tol 1e-04)")


def peer_case(B, T, H, dk, dv, chunk):
    """gdn_ref's chunked form (the benchmark peer) equals its recurrent form, values and grads."""
    g = torch.Generator().manual_seed(3)
    q = torch.randn(B, T, H, dk, generator=g, dtype=torch.float64)
    k = torch.randn(B, T, H, dk, generator=g, dtype=torch.float64)
    q, k = q / q.norm(dim=-1, keepdim=True) * dk ** -0.5, k / k.norm(dim=-1, keepdim=True)
    v = torch.randn(B, T, H, dv, generator=g, dtype=torch.float64)
    a = -torch.rand(B, T, H, generator=g, dtype=torch.float64)
    b = torch.rand(B, T, H, generator=g, dtype=torch.float64)
    do = torch.randn(B, T, H, dv, generator=g, dtype=torch.float64)
    res = []
    for fn in (recurrent_gated_delta, lambda *x: chunk_gated_delta(*x, chunk=chunk)):
        ins = [t.clone().requires_grad_(True) for t in (q, k, v, a, b)]
        o = fn(*ins)
        o.backward(do)
        res.append([o.detach()] + [t.grad for t in ins])
    worst = max(check(f"peer chunk {chunk} {nm}", x.numpy(), r.numpy(), 1e-10)
                for nm, x, r in zip(("o", "dq", "dk", "dv", "dg", "dbeta"), res[1], res[0]))
    print(f"  PyTorch chunked peer vs recurrent, T{T} chunk {chunk}: worst {worst:.1e} (float64, tol 1e-10)")


if __name__ != "__main__":
    raise ImportError("gdn.py is a test script")

run_case("odd sizes", 2, 37, 24, 3, 5, 7, conv=4, chunk=8)
run_case("T = 1", 2, 1, 16, 2, 4, 4)
run_case("T 100, chunk 64, dv 2 dk, conv 3", 1, 100, 32, 2, 8, 16, conv=3, chunk=64)
run_case("recurrent kernel", 2, 21, 20, 2, 6, 6, kernel="recurrent")
run_case("no convolution, chunk 5", 1, 23, 16, 4, 4, 4, conv=0, chunk=5)
peer_case(2, 45, 2, 8, 6, 16)
peer_case(1, 7, 1, 4, 4, 64)
finish("torch_gdn")
