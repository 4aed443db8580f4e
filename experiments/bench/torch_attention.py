"""PyTorch peer for bench_core's attention: the same causal GQA attention forward+backward
(B=1, T=1024, H=8, D=64, float32) with torch 1.13 ops (no fused SDPA in 1.13 on CPU)."""
import json
import sys
import time

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)


def attn(q, k, v, H, G):
    k = k.repeat_interleave(H // G, dim=1)
    v = v.repeat_interleave(H // G, dim=1)
    T = q.shape[2]
    s = q @ k.transpose(-1, -2) / (q.shape[-1] ** 0.5)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    s = s.masked_fill(~mask, float("-inf"))
    return s.softmax(-1) @ v


for G in (4, 8):
    B, T, H, D = 1, 1024, 8, 64
    q = torch.randn(B, H, T, D, requires_grad=True)
    k = torch.randn(B, G, T, D, requires_grad=True)
    v = torch.randn(B, G, T, D, requires_grad=True)
    g = torch.randn(B, H, T, D)

    def fwd():
        with torch.no_grad():
            attn(q, k, v, H, G)

    def fwd_bwd():
        y = attn(q, k, v, H, G)
        y.backward(g)

    res = {}
    for name, fn in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
        fn()
        best = 1e30
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(3):
                fn()
            best = min(best, (time.perf_counter() - t0) / 3)
        res[name] = best
    print(json.dumps({"bench": "torch_attention", "torch": torch.__version__, "B": B, "T": T, "H": H, "G": G,
                      "D": D, "threads": threads, "fwd_ms": round(res["fwd"] * 1e3, 2),
                      "fwd_bwd_ms": round(res["fwd_bwd"] * 1e3, 2)}))
