"""PyTorch peer of bench_gpt: the same baseline GPT (tests/torch_ref/gpt_ref.py, float32, eager,
Debian torch 1.13 on CPU), B=1, T=1024, `accum` micro-steps per step, forward + backward +
Muon (matrices) / Adam (embedding, scalars) update. Prints one JSON line."""
import json
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "torch_ref"))
from gpt_ref import GPT, Muon  # noqa: E402

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
accum = int(sys.argv[2]) if len(sys.argv) > 2 else 4
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = dict(arch="gpt", vocab_size=1024, layers=9, dim=512, heads=8, kv_heads=4, mlp_mult=2, mlp_hidden=0, seq_len=1024,
           mlp_act="relu2", softcap=30.0, rope_base=10000.0, tie_embeddings=True, skips=True)
model = GPT(cfg)
with torch.no_grad():
    model.tok_emb.weight.normal_(0, 0.005)
names = dict(model.named_parameters())
mats = [p for n, p in names.items() if n.startswith("blocks.") and p.ndim == 2 and "resid_mix" not in n]
emb = [names["tok_emb.weight"]]
rest = [p for n, p in names.items() if all(p is not q for q in mats + emb)]
opts = [Muon(mats, 0.04, 0.95, 0.85, 500, 5), torch.optim.Adam(emb, lr=0.05, betas=(0.9, 0.95)),
        torch.optim.Adam(rest, lr=0.04, betas=(0.9, 0.95))]
T = 1024
shard = os.environ.get("TERN_BENCH_SHARD")
need = (accum * (steps + 1) + 1) * (T + 1)
if shard and os.path.exists(shard):
    tok = np.fromfile(shard, dtype="<u2", offset=1024)[:need].astype(np.int64)
else:
    tok = np.random.default_rng(5).integers(0, 1024, need)
tok = torch.from_numpy(tok)
t_fb = t_opt = 0.0
for s in range(steps + 1):
    if s == 1:
        t0 = time.perf_counter()
    for p in names.values():
        p.grad = None
    a = time.perf_counter()
    for k in range(accum):
        off = (s * accum + k) * (T + 1)
        x = tok[off:off + T][None]
        y = tok[off + 1:off + T + 1][None]
        (model(x, y) / accum).backward()
    b = time.perf_counter()
    for o in opts:
        o.step()
    c = time.perf_counter()
    if s >= 1:
        t_fb += b - a
        t_opt += c - b
total = time.perf_counter() - t0
tokens = steps * accum * T
print(json.dumps({"bench": "gpt_train", "impl": "pytorch", "torch": torch.__version__, "threads": threads,
                  "tokens_per_step": accum * T, "steps": steps, "tok_per_s": round(tokens / total, 1),
                  "fwd_bwd_tok_per_s": round(tokens / t_fb, 1), "optimizer_s_per_step": round(t_opt / steps, 3),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
