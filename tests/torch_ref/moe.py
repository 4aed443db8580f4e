"""PyTorch parity of tern's MoE channel mixer (the moe block kind) against moe_ref.py's float64
twin (dense masks, no sort; autograd for the gradients). Same weights, routing bias and input
(float32 values, written by this script and loaded by refdump's "block" case); tern's output,
d(input) and every parameter gradient must agree within 1e-4 of the tensor's largest reference
value (floor 1e-6), and tern's per-expert token counts must equal the reference's selection
counts. Cases: odd sizes, T = 1, top-1 (whose normalised gate gives the router no gradient),
top-K = E, several shared experts or none, route scale 2.5, a bias that changes the choice.
Inputs whose K-th and (K+1)-th biased affinities lie within 1e-4 are redrawn, so float32 and
float64 cannot choose differently."""
import json

import numpy as np
import torch

import common
from common import finish
from moe_ref import Layer

torch.set_num_threads(2)
rng = np.random.default_rng(11)
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


def f32(x):
    return np.asarray(x, np.float32)


def margin(model, h, K):
    """smallest gap between the K-th and (K+1)-th biased affinity over the tokens"""
    with torch.no_grad():
        s = torch.sigmoid(model.moe.router(torch.from_numpy(h.astype(np.float64)).reshape(-1, h.shape[-1]))) + model.moe.bias
        v = torch.sort(s, dim=-1, descending=True).values
        return float((v[:, K - 1] - v[:, K]).min()) if v.shape[1] > K else 1.0


def run_case(tag, B, T, C, E, K, S, H, scale=1.0, bias_amp=0.3):
    model = Layer(dim=C, experts=E, shared=S, topk=K, hidden=H, route_scale=scale).double()
    params = {}
    for n, p in model.named_parameters():
        v = f32(rng.standard_normal(p.shape) / np.sqrt(p.shape[1]) * (3.0 if "router" in n else 1.0))
        with torch.no_grad():
            p.copy_(torch.from_numpy(v.astype(np.float64)))
        params[n] = v
    bias = f32(rng.uniform(-bias_amp, bias_amp, E))
    model.moe.bias.copy_(torch.from_numpy(bias.astype(np.float64)))
    for _ in range(100):
        h = f32(rng.standard_normal((B, T, C)))
        if margin(model, h, K) > 1e-4:
            break
    dout = f32(rng.standard_normal((B, T, C)))
    block = {"kind": "moe", "stack": {"dim": C, "mlp_mult": 2},
             "cfg": {"moe_experts": E, "moe_topk": K, "moe_shared": S, "moe_hidden": H, "moe_route_scale": scale}}
    res = common.run_refdump("block", dict(h=h, dout=dout, **{"p/" + n: p for n, p in params.items()}, **{"b/moe.bias": bias}),
                             {"block": json.dumps(block)})
    th = torch.from_numpy(h.astype(np.float64)).requires_grad_(True)
    y = model(th)
    y.backward(torch.from_numpy(dout.astype(np.float64)))
    print(f"{tag}: B{B} T{T} C{C} E{E} top-{K} shared {S} H{H} scale {scale}")
    worst = [check(f"{tag} out", res["out"], y.detach().numpy()), check(f"{tag} dh", res["dh"], th.grad.numpy())]
    for n, p in model.named_parameters():
        g = p.grad.numpy() if p.grad is not None else np.zeros(p.shape)  # an expert no token chose
        worst.append(check(f"{tag} d {n}", res["g/" + n], g))
    with torch.no_grad():
        sel, _, _ = model.moe.route(th.reshape(-1, C))
        counts = np.bincount(sel.reshape(-1).numpy(), minlength=E)
        nobias = torch.topk(torch.sigmoid(model.moe.router(th.reshape(-1, C))), K, dim=-1).indices
    if not np.array_equal(res["counts"], counts):
        print(f"  FAIL {tag}: tern counted {res['counts']} tokens per expert, the reference chose {counts}")
        common.failures += 1
    moved = int((torch.sort(nobias, -1).values != torch.sort(sel, -1).values).any(-1).sum())
    print(f"  {tag}: worst over out, dh and {len(params)} parameter gradients: {max(worst):.2e} (tol 1e-04); "
          f"loads {counts.tolist()} equal; the bias changed the choice of {moved} of {B * T} tokens")


if __name__ != "__main__":
    raise ImportError("moe.py is a test script")

run_case("odd sizes", 2, 13, 7, 5, 2, 1, 9)
run_case("T = 1", 1, 1, 6, 4, 2, 1, 5)
run_case("top-1, no shared, scale 2.5", 2, 9, 8, 6, 1, 0, 6, scale=2.5)
run_case("top-K = E, two shared", 1, 11, 5, 3, 3, 2, 4)
run_case("16 experts top-2 (the seed's shape, narrow)", 2, 40, 16, 16, 2, 1, 12, bias_amp=0.05)
finish("torch_moe")
