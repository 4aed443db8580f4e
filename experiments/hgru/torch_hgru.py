"""PyTorch peer of experiments/hgru/run.sh's hgru GRU model: the same stack (embedding -> 4 x
[RMSNorm -> torch.nn.GRU -> residual, RMSNorm -> relu^2 MLP -> residual] -> RMSNorm -> tied head,
softcap 30, dim 256, MLP 512), the same step (8192 tokens as micro-batches of 8 x 256, Muon on the
block matrices and Adam on the rest, as tern's default groups) in float32 on the given threads.
Prints one JSON line: training tokens per second over `steps` timed steps after one warm-up."""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "torch_ref"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from gpt_ref import Muon  # noqa: E402


class Layer(torch.nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.n1, self.n2 = torch.nn.Parameter(torch.ones(d)), torch.nn.Parameter(torch.ones(d))
        self.gru = torch.nn.GRU(d, d, batch_first=True)
        self.fc, self.proj = torch.nn.Linear(d, hidden, bias=False), torch.nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        x = x + self.gru(F.rms_norm(x, (x.shape[-1],), self.n1) if hasattr(F, "rms_norm") else rms(x, self.n1))[0]
        return x + self.proj(torch.relu(self.fc(rms(x, self.n2))).square())


def rms(x, w):
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + 1.1920929e-07) * w


class HGRU(torch.nn.Module):
    def __init__(self, V=1024, d=256, L=4, hidden=512):
        super().__init__()
        self.emb = torch.nn.Embedding(V, d)
        self.layers = torch.nn.ModuleList(Layer(d, hidden) for _ in range(L))
        self.norm = torch.nn.Parameter(torch.ones(d))

    def forward(self, idx, tgt):
        x = self.emb(idx)
        for layer in self.layers:
            x = layer(x)
        z = rms(x, self.norm) @ self.emb.weight.T
        z = 30.0 * torch.tanh(z / 30.0)
        return F.cross_entropy(z.reshape(-1, z.shape[-1]), tgt.reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = HGRU()
    mats = [p for n, p in model.named_parameters() if n.startswith("layers.") and p.ndim == 2]
    rest = [p for p in model.parameters() if all(p is not q for q in mats)]
    opts = [Muon(mats, lr=0.04, momentum=0.95, warm_start=0.85, warm_steps=500, ns_steps=5),
            torch.optim.Adam(rest, lr=0.04, betas=(0.9, 0.95))]
    micro, B, T = 4, 8, 256
    x = torch.randint(0, 1024, (micro, B, T))
    y = torch.randint(0, 1024, (micro, B, T))

    def step():
        for p in model.parameters():
            p.grad = None
        for m in range(micro):
            (model(x[m], y[m]) / micro).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for o in opts:
            o.step()

    step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = time.perf_counter() - t0
    print(json.dumps({"run": "torch-nn.GRU-fp32", "tok_per_s": a.steps * micro * B * T / dt, "threads": a.threads,
                      "params": sum(p.numel() for p in model.parameters()), "steps": a.steps, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
