"""PyTorch peer for bench_gdn, and the driver that runs both in one go on the same threads.

  /usr/bin/python3 experiments/bench/torch_gdn.py [--threads 2] [--build build] [--model]

Measures, in float32 torch (Debian python3-torch 1.13, eager), with tests/torch_ref/gdn_ref.py:
  * the gated delta rule alone, forward and forward + backward (autograd), at B = 4, T = 1024,
    8 heads of d_k = d_v = 64: the chunkwise WY / UT form in batched matmuls (chunk_gated_delta:
    everything but the carry of the state batched over batch, heads and chunks; the UT inverse as
    the finite series (I - A)(I + A^2)(I + A^4)... in batched matmuls, 2x faster here than torch
    1.13's batched solve_triangular, which loops over the matrices) at chunks of 32, 64 and 128 --
    the fastest pure-PyTorch form we have;
  * one Gated DeltaNet layer (projections, convolutions, norms, the chunked core, gated norm)
    forward + backward at d = 512;
then runs `<build>/bin/bench_gdn <threads> core` and `... layer` (and `... model` with --model)
and prints one JSON line per measurement plus the ratios: tern chunked vs tern recurrent and vs
the best PyTorch chunk size."""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "torch_ref"))
sys.path.insert(0, HERE)

import torch  # noqa: E402

from gdn_ref import GatedDeltaNet, chunk_gated_delta  # noqa: E402
from ratio_table import machine_line, print_table  # noqa: E402

B, T, H, D, DIM = 4, 1024, 8, 64, 512


def best_of(fn, reps=3):
    fn()
    best = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_core(threads, chunk):
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(B, T, H, D, generator=g), dim=-1) * D ** -0.5
    k = torch.nn.functional.normalize(torch.randn(B, T, H, D, generator=g), dim=-1)
    v = torch.randn(B, T, H, D, generator=g)
    a = -torch.rand(B, T, H, generator=g) * 0.7
    b = torch.rand(B, T, H, generator=g)
    ins = [x.requires_grad_(True) for x in (q, k, v, a, b)]
    do = torch.randn(B, T, H, D, generator=g) * 1e-3

    def fwd():
        with torch.no_grad():
            chunk_gated_delta(*ins, chunk=chunk)

    def fwd_bwd():
        for x in ins:
            x.grad = None
        chunk_gated_delta(*ins, chunk=chunk).backward(do)

    return {"bench": "gdn_core", "impl": "torch", "torch": torch.__version__, "kernel": "chunked", "chunk": chunk, "B": B, "T": T,
            "H": H, "dk": D, "dv": D, "threads": threads, "fwd_ms": round(best_of(fwd) * 1e3, 2),
            "fwd_bwd_ms": round(best_of(fwd_bwd) * 1e3, 2)}


def bench_layer(threads):
    torch.manual_seed(0)
    layer = GatedDeltaNet(DIM, H, D, D, conv=4, core="chunk", chunk=64)
    with torch.no_grad():
        layer.A_log.copy_(torch.rand(H) * 15 + 1).log_()
        layer.dt_bias.fill_(-4.0)
    h = torch.randn(B, T, DIM, requires_grad=True)
    g = torch.randn(B, T, DIM) * 1e-3

    def step():
        layer(h).backward(g)

    return {"bench": "gdn_layer", "impl": "torch", "torch": torch.__version__, "kernel": "chunked", "B": B, "T": T, "d": DIM,
            "H": H, "dk": D, "threads": threads, "fwd_bwd_ms": round(best_of(step) * 1e3, 2)}


def run_tern(build, threads, what):
    exe = os.path.join(build, "bin", "bench_gdn")
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "passive"))  # as `tern` runs itself
    r = subprocess.run([exe, str(threads), what], capture_output=True, text=True, check=True, env=env)
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default=os.environ.get("TERN_BUILD", os.path.join(HERE, "..", "..", "build")))
    ap.add_argument("--model", action="store_true", help="also tern's chimera vs GPT training throughput")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count()}), flush=True)
    print(machine_line(a.threads, torch.__version__), flush=True)
    peers = [bench_core(a.threads, c) for c in (32, 64, 128)]
    for p in peers:
        print(json.dumps(p), flush=True)
    tern = run_tern(a.build, a.threads, "core")
    for r in tern:
        print(json.dumps(r), flush=True)
    best_peer = min(p["fwd_bwd_ms"] for p in peers)
    rec = [r for r in tern if r["kernel"] == "recurrent"][0]["fwd_bwd_ms"]
    for r in tern:
        if r["kernel"] == "chunked":
            print(json.dumps({"ratio": f"gdn_core fwd+bwd, tern chunked {r['chunk']}", "vs_tern_recurrent_x": round(rec / r["fwd_bwd_ms"], 2),
                              "vs_best_torch_x": round(best_peer / r["fwd_bwd_ms"], 2)}), flush=True)
    tl = bench_layer(a.threads)
    print(json.dumps(tl), flush=True)
    layers = run_tern(a.build, a.threads, "layer")
    for r in layers:
        print(json.dumps(r), flush=True)
    ch = [r for r in layers if r["kernel"] == "chunked"][0]["fwd_bwd_ms"]
    lrec = [r for r in layers if r["kernel"] == "recurrent"][0]["fwd_bwd_ms"]
    print(json.dumps({"ratio": "gdn_layer fwd+bwd, tern chunked", "vs_tern_recurrent_x": round(lrec / ch, 2),
                      "vs_torch_x": round(tl["fwd_bwd_ms"] / ch, 2)}), flush=True)
    bp = min(peers, key=lambda p: p["fwd_bwd_ms"])
    rows = [(f"gated delta rule, chunk {r['chunk']}", r["fwd_bwd_ms"], rec, bp["fwd_bwd_ms"], f"chunk {bp['chunk']}")
            for r in tern if r["kernel"] == "chunked"]
    rows.append(("Gated DeltaNet layer, d 512", ch, lrec, tl["fwd_bwd_ms"], "chunk 64"))
    print_table(f"Gated DeltaNet, B {B}, T {T}, {H} heads of {D}", rows)
    if a.model:
        models = run_tern(a.build, a.threads, "model")
        for r in models:
            print(json.dumps(r), flush=True)
        print(json.dumps({"ratio": "train tokens/s chimera / gpt", "x": round(models[0]["tokens_per_s"] / models[1]["tokens_per_s"], 2)}))


if __name__ == "__main__":
    main()
