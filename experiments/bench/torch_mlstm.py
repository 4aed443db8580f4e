"""PyTorch peer for bench_mlstm, and the driver that runs both in one go on the same threads.

  /usr/bin/python3 experiments/bench/torch_mlstm.py [--threads 2] [--build build] [--micro 4] [--steps 2]

The peer is the best pure-PyTorch form I could write (float32, torch 1.13, autograd): the chunkwise
mLSTM -- the recurrence of the chunk states (C, n, m) in a loop over chunks, batched over B x H,
and every chunk's intra-chunk attention-like part in one batched product -- with the stabilisers
detached (exact: the output does not depend on them; tern's backward holds them constant too).
It is checked against the float64 paper-equation reference (tests/torch_ref/mlstm_ref.py) before
timing. Measured, at B=4, T=1024, 16 heads of 64 (the dim-512 block's inner width 1024):
  * the cell forward+backward (chunks 32, 64, 128);
  * the whole mlstm block forward+backward at dim 512 (projections, conv, gates, cell, norm);
then runs `<build>/bin/bench_mlstm <threads> cell|layer|model` and prints one JSON line per
measurement plus the ratios (tern chunkwise vs tern recurrent, tern vs torch)."""
import argparse
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "torch_ref"))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mlstm_ref  # noqa: E402
from ratio_table import machine_line, print_table  # noqa: E402

EPS = mlstm_ref.EPS


def mlstm_chunkwise(q, k, v, ig, fg, exp_forget=False, L=64):
    """q, k, v [B, T, H, D]; ig, fg [B, T, H] -> h [B, T, H, D]; T a multiple of L."""
    B, T, H, D = q.shape
    NC = T // L
    r = lambda t: t.reshape(B, NC, L, H, -1).permute(0, 3, 1, 2, 4).contiguous()  # noqa: E731  [B, H, NC, L, .]
    q, k, v = r(q), r(k) / math.sqrt(D), r(v)
    lf = (fg if exp_forget else F.logsigmoid(fg)).reshape(B, NC, L, H).permute(0, 3, 1, 2)
    ig = ig.reshape(B, NC, L, H).permute(0, 3, 1, 2)
    b = lf.cumsum(-1)                         # cumulative log forget inside each chunk
    w = ig - b                                # log weight of token j up to b_i
    g = b[..., -1]                            # chunk totals [B, H, NC]
    with torch.no_grad():                     # the stabilisers (constants: h does not depend on them)
        wmax = w.max(-1).values
        mprev = [torch.full_like(g[..., 0], -math.inf)]
        for c in range(NC - 1):
            mprev.append(torch.maximum(g[..., c] + mprev[-1], g[..., c] + wmax[..., c]))
        mprev = torch.stack(mprev, -1)        # [B, H, NC]: m of the state entering each chunk
        mnext = torch.maximum(g + mprev, g + wmax)
    # chunk states C_{c+1} = beta_c C_c + K_c^T diag(e^{g + w - m'}) V_c, as one product with the
    # chunk-decay matrix exp(LB_{c-1} - LB_{c'}) (c' < c; LB the cumulative log beta): no Python
    # loop in the autograd graph (a loop over chunk slices costs O(chunks^2) in its backward)
    kw = k * torch.exp(g[..., None] + w - mnext[..., None])[..., None]
    kvs, ksum = kw.transpose(-1, -2) @ v, kw.sum(-2)         # [B, H, NC, D, D], [B, H, NC, D]
    logb = g + mprev - mnext                                   # log beta_c (<= 0)
    logb = torch.cat([torch.zeros_like(logb[..., :1]), logb[..., 1:]], -1)  # beta_0 scales the empty state
    LB = logb.cumsum(-1)
    lower = torch.ones(NC, NC, dtype=torch.bool, device=q.device).tril(-1)
    Dc = torch.exp((F.pad(LB[..., :-1], (1, 0))[..., :, None] - LB[..., None, :]).masked_fill(~lower, -math.inf))
    Cs = (Dc @ kvs.flatten(-2)).reshape(B, H, NC, D, D)
    ns = Dc @ ksum
    # inside each chunk, all chunks at once
    causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
    logD = (b[..., :, None] + w[..., None, :]).masked_fill(~causal, -math.inf)
    with torch.no_grad():
        m = torch.maximum(logD.max(-1).values, b + mprev[..., None])
    Dm = torch.exp(logD - m[..., None])
    S = (q @ k.transpose(-1, -2)) * Dm
    a = torch.exp(b + mprev[..., None] - m)[..., None]
    num = S @ v + a * (q @ Cs)
    nq = S.sum(-1) + a[..., 0] * (q * ns[..., None, :]).sum(-1)
    e = torch.exp(-m)
    h = num / (torch.maximum(nq.abs(), e) + EPS * e)[..., None]
    return h.permute(0, 2, 3, 1, 4).reshape(B, T, H, D)


def best_of(fn, reps):
    fn()
    best = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def check_peer():
    """The peer against the float64 naive recurrence (forward and the gradients of q and fg)."""
    torch.manual_seed(0)
    B, T, H, D = 2, 24, 2, 8
    x = [torch.randn(B, T, H, D, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    gi = torch.randn(B, T, H, dtype=torch.float64, requires_grad=True)
    gf = (torch.randn(B, T, H, dtype=torch.float64) + 2).requires_grad_(True)
    worst = 0.0
    for fn in (lambda *a: mlstm_chunkwise(*a, L=8), mlstm_ref.mlstm_cell_recurrent):
        out = fn(*x, gi, gf)
        out.square().sum().backward()
        res = [out.detach().clone(), x[0].grad.clone(), gf.grad.clone()]
        for t in x + [gi, gf]:
            t.grad = None
        if fn is mlstm_ref.mlstm_cell_recurrent:
            worst = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(first, res))
        first = res
    assert worst < 1e-10, f"peer disagrees with the reference: {worst}"
    return worst


def bench_cell(reps):
    B, T, H, D = 4, 1024, 16, 64
    torch.manual_seed(1)
    q, k, v = (torch.randn(B, T, H, D, requires_grad=True) for _ in range(3))
    gi = torch.randn(B, T, H, requires_grad=True)
    gf = (torch.randn(B, T, H) + 3).requires_grad_(True)
    dh = torch.randn(B, T, H, D) * 1e-3
    out = []
    for L in (32, 64, 128):
        def run():
            mlstm_chunkwise(q, k, v, gi, gf, L=L).backward(dh)
        out.append({"bench": "mlstm_cell", "impl": "torch", "form": "chunkwise", "chunk": L, "B": B, "T": T, "H": H, "D": D,
                    "threads": torch.get_num_threads(), "fwd_bwd_ms": round(best_of(run, reps) * 1e3, 2)})
    return out


def bench_layer(reps):
    B, T, C, D, bs, K = 4, 1024, 512, 64, 4, 4
    I, H = 2 * C, 2 * C // D
    torch.manual_seed(2)
    p = {"proj_up.weight": torch.randn(2 * I, C) * math.sqrt(2 / (5 * C)), "conv.weight": torch.rand(I, K) - 0.5,
         "conv.bias": torch.rand(I) - 0.5, "q.weight": torch.randn(I, bs) * 0.3, "k.weight": torch.randn(I, bs) * 0.3,
         "v.weight": torch.randn(I, bs) * 0.3, "gates.weight": torch.randn(2 * H, 3 * I) * 0.01,
         "gates.bias": torch.cat([torch.randn(H) * 0.1, torch.linspace(3, 6, H)]), "norm.weight": torch.ones(I),
         "skip": torch.ones(I), "proj_down.weight": torch.randn(C, I) * 2 / math.sqrt(C)}
    for t in p.values():
        t.requires_grad_(True)
    x = torch.randn(B, T, C, requires_grad=True)
    dy = torch.randn(B, T, C) * 1e-3
    cfg = dict(head_dim=D, qkv_block=bs, conv=K, exp_forget=False, norm_eps=1e-5)
    cell = lambda *a: mlstm_chunkwise(*a, L=64)  # noqa: E731

    def run():
        mlstm_ref.mlstm_block(x, p, cfg, cell=cell).backward(dy)
    return [{"bench": "mlstm_layer", "impl": "torch", "form": "chunkwise", "B": B, "T": T, "dim": C,
             "params": sum(t.numel() for t in p.values()), "threads": torch.get_num_threads(),
             "fwd_bwd_ms": round(best_of(run, reps) * 1e3, 2)}]


def tern(build, threads, what, *extra):
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "passive"))  # as `tern` runs itself
    r = subprocess.run([os.path.join(build, "bin", "bench_mlstm"), str(threads), what, *map(str, extra)], capture_output=True,
                       text=True, check=True, env=env)
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default="build")
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(machine_line(a.threads, torch.__version__), flush=True)
    print(json.dumps({"bench": "mlstm_peer_check", "max_rel_err_vs_float64_reference": check_peer()}))
    rows = []
    for what, fn in (("cell", bench_cell), ("layer", bench_layer)):
        rows += tern(a.build, a.threads, what) + fn(a.reps)
    rows += tern(a.build, a.threads, "model", a.micro, a.steps)
    for r in rows:
        print(json.dumps(r))
    pick = lambda bench, impl, form, chunk=None: next(  # noqa: E731
        (r["fwd_bwd_ms"] for r in rows if r["bench"] == bench and r["impl"] == impl and r["form"] == form
         and (chunk is None or r.get("chunk") == chunk)), None)
    for bench, chunk in (("mlstm_cell", 64), ("mlstm_layer", None)):
        tc, tr, pt = pick(bench, "tern", "chunkwise", chunk), pick(bench, "tern", "recurrent"), pick(bench, "torch", "chunkwise", chunk)
        print(json.dumps({"bench": bench + "_ratios", "threads": a.threads, "tern_chunkwise_ms": tc, "tern_recurrent_ms": tr,
                          "torch_chunkwise_ms": pt, "chunkwise_vs_recurrent": round(tr / tc, 2), "tern_vs_torch": round(pt / tc, 2)}))
    tr = {r["model"]: r for r in rows if r["bench"] == "train"}
    if len(tr) == 2:
        (n1, r1), (n2, r2) = tr.items()
        print(json.dumps({"bench": "train_ratio", "models": [n1, n2], "params": [r1["params"], r2["params"]],
                          "tokens_per_s": [r1["tokens_per_s"], r2["tokens_per_s"]],
                          "ratio": round(r1["tokens_per_s"] / r2["tokens_per_s"], 3)}))

    cells = [r for r in rows if r["bench"] == "mlstm_cell" and r["impl"] == "torch"]
    bp = min(cells, key=lambda r: r["fwd_bwd_ms"])
    table = [(f"mLSTM cell, chunk {L}", pick("mlstm_cell", "tern", "chunkwise", L), pick("mlstm_cell", "tern", "recurrent"),
              bp["fwd_bwd_ms"], f"chunk {bp['chunk']}") for L in (64, 32, 128)]
    table.append(("mLSTM block, dim 512", pick("mlstm_layer", "tern", "chunkwise"), pick("mlstm_layer", "tern", "recurrent"),
                  pick("mlstm_layer", "torch", "chunkwise"), "chunk 64"))
    print_table("mLSTM, B 4, T 1024, 16 heads of 64", table)

if __name__ == "__main__":
    main()
