"""PyTorch peer for bench_trn, and the driver that runs both in one go on the same threads.

  /usr/bin/python3 experiments/bench/torch_trn.py [--threads 2] [--micro 4] [--steps 2] [--build build]

Measures, for tests/torch_ref/trn_ref.py (the PR #669 formulation in float32 torch 1.13, Kogge-Stone
scan -- the PR's own pure-torch path):
  * one TRN layer forward+backward at B=1, T=1024, d=512, K=256;
  * training throughput of the default TRN hybrid (10 x 512, K=256, BigramHash): per step `micro`
    forward+backward passes of 1 x 1024 tokens, grad-norm clip 0.3, Muon (NS5) on the block
    matrices and the bigram projection + Adam on the rest, exactly bench_trn's step;
then runs `<build>/bin/bench_trn <threads> layer` and `... model <micro> <steps>` and prints one
JSON line per measurement plus the tern / torch ratios."""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "torch_ref"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gpt_ref import Muon  # noqa: E402
from trn_ref import Resonance, TRNHybrid  # noqa: E402


def pr_like_init(model):
    """Enough of PR #669's init that training steps stay finite (speed does not depend on it)."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("W_res.weight"):
                p.normal_(0, 2e-3)
            elif n.endswith("W_phase.weight"):
                p.normal_(0, 1e-3)
            elif n.endswith("res_scale") or n == "bigram.scale":
                p.fill_(0.05)
            elif n.endswith("lambda_pcg"):
                p.fill_(0.5)
            elif n.endswith("omega_base"):
                p.copy_(torch.linspace(-5.09, 1.14, p.numel()).exp())
            elif n == "tok_emb.weight":
                p.normal_(0, 0.005)
            elif n == "bigram.embed.weight":
                p.normal_(0, 0.02)


def bench_layer(threads):
    torch.manual_seed(0)
    layer = Resonance(512, 256, 3.0)
    pr_like_init(layer)
    h = torch.randn(1, 1024, 512, requires_grad=True)
    g = torch.randn(1, 1024, 512) * 1e-3

    def step():
        y = layer(h, 1.0)
        y.backward(g)

    step()
    best = 1e30
    for _ in range(3):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return {"bench": "trn_layer", "impl": "torch", "torch": torch.__version__, "B": 1, "T": 1024, "d": 512, "K": 256,
            "threads": threads, "layer_fwd_bwd_ms": round(best * 1e3, 3)}


def bench_model(threads, micro, steps):
    torch.manual_seed(0)
    model = TRNHybrid({})
    pr_like_init(model)
    names = dict(model.named_parameters())
    mats = [p for n, p in names.items() if (n.startswith("blocks.") and p.ndim == 2 and "resid_mix" not in n)
            or n == "bigram.proj.weight"]
    emb = [p for n, p in names.items() if n in ("tok_emb.weight", "bigram.embed.weight")]
    rest = [p for p in names.values() if all(p is not q for q in mats + emb)]
    opts = [Muon(mats, lr=0.04, momentum=0.95, warm_start=0.85, warm_steps=500, ns_steps=5, wd=0.04),
            torch.optim.Adam(emb, lr=0.05, betas=(0.9, 0.95), eps=1e-8),
            torch.optim.Adam(rest, lr=0.04, betas=(0.9, 0.95), eps=1e-8)]
    T = 1024
    need = micro * (steps + 1) * (T + 1)
    shard = os.environ.get("TERN_BENCH_SHARD")
    real = bool(shard and os.path.exists(shard))
    if real:  # the same tokens as bench_trn: the shard after its 1024-byte header
        tok = np.fromfile(shard, dtype="<u2", offset=1024)[:need].astype(np.int64)
    else:
        tok = np.random.default_rng(5).integers(0, 1024, need)
    tok = torch.from_numpy(tok)
    t_fb = t_opt = 0.0
    loss = 0.0
    for s in range(steps + 1):  # step 0 warms up
        for p in names.values():
            p.grad = None
        a = time.perf_counter()
        for k in range(micro):
            off = (s * micro + k) * (T + 1)
            l = model(tok[off:off + T][None], tok[off + 1:off + T + 1][None], training=True)
            (l / micro).backward()
            loss = l.item()
        b = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(list(names.values()), 0.3)
        for o in opts:
            o.step()
        c = time.perf_counter()
        if s > 0:
            t_fb += b - a
            t_opt += c - b
    tokens = steps * micro * T
    return {"bench": "trn_hybrid_train", "impl": "torch", "torch": torch.__version__,
            "params": sum(p.numel() for p in names.values()), "micro_batches": micro, "B": 1, "T": T,
            "threads": threads, "data": "fineweb" if real else "random", "step_s": round((t_fb + t_opt) / steps, 3),
            "tokens_per_s": round(tokens / (t_fb + t_opt), 1), "fwd_bwd_tokens_per_s": round(tokens / t_fb, 1),
            "optimizer_s_per_step": round(t_opt / steps, 3), "loss": round(loss, 4),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def run_tern(build, threads, what, *extra):
    exe = os.path.join(build, "bin", "bench_trn")
    r = subprocess.run([exe, str(threads), what, *map(str, extra)], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--build", default=os.environ.get("TERN_BUILD", os.path.join(HERE, "..", "..", "build")))
    ap.add_argument("--torch-only", action="store_true")
    a = ap.parse_args()
    shard = os.path.join(HERE, "..", "..", "..", "shared", "data", "fineweb", "fineweb_train_000000.bin")
    if "TERN_BENCH_SHARD" not in os.environ and os.path.exists(shard):
        os.environ["TERN_BENCH_SHARD"] = os.path.abspath(shard)
    torch.set_num_threads(a.threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    stamp = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count()}
    print(json.dumps(stamp), flush=True)
    tl = bench_layer(a.threads)
    print(json.dumps(tl), flush=True)
    if not a.torch_only:
        layers = run_tern(a.build, a.threads, "layer")
        for r in layers:
            print(json.dumps(dict(r, impl="tern")), flush=True)
        seq = [r for r in layers if r["scan"] == "sequential"][0]
        print(json.dumps({"ratio": "trn_layer torch/tern", "x": round(tl["layer_fwd_bwd_ms"] / seq["layer_fwd_bwd_ms"], 2)}))
    tm = bench_model(a.threads, a.micro, a.steps)
    print(json.dumps(tm), flush=True)
    if not a.torch_only:
        mm = run_tern(a.build, a.threads, "model", a.micro, a.steps)[0]
        print(json.dumps(mm), flush=True)
        print(json.dumps({"ratio": "trn_hybrid_train tern/torch", "tokens_per_s_x": round(mm["tokens_per_s"] / tm["tokens_per_s"], 2),
                          "fwd_bwd_x": round(mm["fwd_bwd_tokens_per_s"] / tm["fwd_bwd_tokens_per_s"], 2),
                          "optimizer_x": round(tm["optimizer_s_per_step"] / mm["optimizer_s_per_step"], 2)}))


if __name__ == "__main__":
    main()
