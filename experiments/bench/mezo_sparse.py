"""Sparse ternary MeZO vs dense MeZO (optim.mezo.sparse_ternary) through `tern train`: a GPT
(dim 256, 4 layers, vocab 64, 1.86M parameters) pre-trained briefly with backprop on synthetic
shards, then fine-tuned with MeZO under ternary QAT (all 2-D tensors but the embedding) for N
steps, dense and sparse alternately, REPEATS times each, Gaussian then Rademacher z. Prints the best
seconds per step, the fraction of weights perturbed and the final val loss.
Usage: mezo_sparse.py [build] [steps] [repeats]"""
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "e2e"))
os.environ.setdefault("TERN_BIN", os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build", "bin"))
from e2e_common import metric, summary, synthetic_language, tern, write_shard  # noqa: E402

steps = int(sys.argv[2]) if len(sys.argv) > 2 else 40
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 2
threads = int(os.environ.get("TERN_BENCH_THREADS", os.cpu_count()))
d = tempfile.mkdtemp(prefix="tern_mezo_sparse_")
seq = synthetic_language(200000)
write_shard(os.path.join(d, "syn_train_000000.bin"), seq[:180000])
write_shard(os.path.join(d, "syn_val_000000.bin"), seq[180000:])
cfg = {
    "name": "pre", "out_dir": os.path.join(d, "runs"), "seed": 3, "threads": threads,
    "model": {"arch": "gpt", "vocab_size": 64, "layers": 4, "dim": 256, "heads": 4, "kv_heads": 2},
    "data": {"train": os.path.join(d, "syn_train_*.bin"), "val": os.path.join(d, "syn_val_*.bin"), "seq_len": 64},
    "optim": {"schedule": {"kind": "constant"}},
    "train": {"batch_tokens": 512, "micro_batch": 8, "max_steps": 60, "log_every": 1, "val_every": 0},
}
cfg_path = os.path.join(d, "cfg.json")
with open(cfg_path, "w") as f:
    json.dump(cfg, f)
pre = summary(tern("train", cfg_path, "--json", timeout=600))
ck = os.path.join(d, "runs", "pre", "ckpt", "latest.h5")
common = ["--set", f"train.init_from={ck}", "--set", "optim.mezo.enabled=true", "--set", "optim.mezo.lr=3e-3",
          "--set", "optim.mezo.eps=1e-2", "--set", f"train.max_steps={steps}", "--set", "quant.qat=true",
          "--set", "quant.weights=ternary", "--set", "quant.min_numel=0", "--set", "quant.start_step=0", "--json"]
print(f"threads {threads}, {steps} MeZO steps, backprop pre-train val_loss {pre.get('val_loss', float('nan')):.4f}")
for pert in ("gaussian", "rademacher"):
    best = {}
    for rep in range(repeats):
        for sparse in ("false", "true"):
            name = f"mezo_{pert}_{sparse}_{rep}"
            s = summary(tern("train", cfg_path, "--set", f"name={name}", "--set", f"optim.mezo.sparse_ternary={sparse}",
                             "--set", f"optim.mezo.perturbation={pert}", *common, timeout=600))
            el = metric(os.path.join(d, "runs", name), "elapsed_s")
            sps = (el[steps] - el[1]) / (steps - 1)  # seconds per step over steps 2..N (step 1 carries the start-up)
            frac = metric(os.path.join(d, "runs", name), "mezo_perturbed_frac")
            fr = sum(frac.values()) / len(frac) if frac else 1.0
            print(f"  {pert} sparse={sparse:5s} rep {rep}: {sps * 1e3:7.1f} ms/step  perturbed {fr:.3f}  "
                  f"val_loss {s.get('val_loss', float('nan')):.4f}")
            if sparse not in best or sps < best[sparse][0]:
                best[sparse] = (sps, fr)
    print(f"{pert} best: dense {best['false'][0] * 1e3:.1f} ms/step, sparse {best['true'][0] * 1e3:.1f} ms/step "
          f"(sparse/dense {best['true'][0] / best['false'][0]:.3f}), perturbed fraction {best['true'][1]:.3f}")
