"""LoRA fine-tuning (train.lora) through the tern binary, on synthetic shards:

- a LoRA run on a trained base writes checkpoints holding the adapters only (plus their optimizer
  state and the base hash), leaves the base file untouched, and its loss falls;
- stop + resume equals the uninterrupted run bit for bit; `tern eval` reads the LoRA checkpoint
  (base + adapters) and `tern export --merge-lora` writes an artifact;
- a different base at the stored path is refused by resume and export in one line naming both
  hashes, and `--base` points export at the right one;
- QAT bases (int5 and ternary, baked once) and distillation (teacher logits of the base) train;
- with MPI, 2 ranks x B equal 1 process with 2 micro-steps of B (adapters to float rounding).
Takes seconds (a 2-layer, 32-wide GPT)."""
import hashlib
import json
import os
import shutil
import sys
import tempfile

import numpy as np
from e2e_common import MPIEXEC, Checks, summary, synthetic_language, tern, write_shard

check = Checks()
d = tempfile.mkdtemp(prefix="tern_lora_")
seq = synthetic_language(24000)
train, val = os.path.join(d, "syn_train_000000.bin"), os.path.join(d, "syn_val_000000.bin")
write_shard(train, seq[:20000])
write_shard(val, seq[20000:])
runs = os.path.join(d, "runs")
cfg = {
    "name": "base", "out_dir": runs, "seed": 3, "threads": 1,
    "model": {"arch": "gpt", "vocab_size": 64, "layers": 2, "dim": 32, "heads": 2, "kv_heads": 1},
    "data": {"train": os.path.join(d, "syn_train_*.bin"), "val": os.path.join(d, "syn_val_*.bin"), "seq_len": 32},
    "train": {"batch_tokens": 256, "micro_batch": 4, "max_steps": 40, "log_every": 1, "val_every": 0, "val_tokens": 1024},
}
cfg_path = os.path.join(d, "cfg.json")
with open(cfg_path, "w") as f:
    json.dump(cfg, f)
base_ck = os.path.join(runs, "base", "ckpt", "latest.h5")


def sha(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def params(ck):
    import h5py
    with h5py.File(ck, "r") as f:
        return {n: np.array(f["params"][n]) for n in f["params"]}, {k: f["optim"][k].shape for k in f.get("optim", {})}


def lora_sets(name, *extra, lr=0.01, steps=12, dropout=0.1):
    lora = {"rank": 4, "alpha": 8, "dropout": dropout, "base": base_ck,
            "targets": ["*.attn.c_q.weight", "*.attn.c_v.weight", "*.mlp.fc.weight", "*.mlp.proj.weight"]}
    return ["--set", f"name={name}", "--set", "train.lora=" + json.dumps(lora), "--set", f"train.max_steps={steps}",
            "--set", f"optim.groups.lora.lr={lr}", "--set", "optim.schedule.kind=constant", "--set", "train.ckpt_every=6", *extra]


def ok(r, what):
    return check(r.returncode == 0, what + ("" if r.returncode == 0 else f" [{r.stderr.strip()[-400:]}]"))


print("base")
b = summary(tern("train", cfg_path, "--json"))
if not check("val_loss" in b, f"base trains (val_loss {b.get('val_loss')})"):
    check.finish("e2e_lora_train")
base_sha = sha(base_ck)

print("LoRA run")
r = tern("train", cfg_path, "--json", *lora_sets("lora"))
s = summary(r)
ok(r, "LoRA run trains")
lck = os.path.join(runs, "lora", "ckpt", "latest.h5")
if s.get("lora_params"):
    p, opt = params(lck)
    check(all(n.startswith("lora.") for n in p) and len(p) == 16,
          f"the checkpoint holds the adapters only ({len(p)} tensors: {sorted(p)[:2]}...)")
    check(sum(v.size for v in p.values()) == s["lora_params"], f"{s['lora_params']} adapter floats (model {s['params']})")
    check(all(shp[0] < s["params"] / 4 for shp in opt.values()), f"optimizer state sized to the adapters: {opt}")
    with open(os.path.join(runs, "lora", "config.json")) as f:
        stored = json.load(f)["train"]["lora"]
    check(len(stored.get("base_hash", "")) == 16, f"the base hash is recorded ({stored.get('base_hash')})")
    check(s["val_loss"] < b["val_loss"] - 0.01, f"held-out loss falls: base {b['val_loss']:.4f} -> {s['val_loss']:.4f}")
check(sha(base_ck) == base_sha, "the base checkpoint is untouched")

print("resume")
ok(tern("train", cfg_path, "--quiet", *lora_sets("lora_rs"), "--stop-after", "6"), "LoRA run stops at step 6")
ok(tern("train", "--quiet", "--resume", os.path.join(runs, "lora_rs")), "and resumes to 12")
if os.path.exists(lck):
    a, _ = params(lck)
    c, _ = params(os.path.join(runs, "lora_rs", "ckpt", "latest.h5"))
    check(a.keys() == c.keys() and all(np.array_equal(a[k], c[k]) for k in a), "stop + resume == uninterrupted (bit-exact)")

print("eval / export")
r = tern("eval", "--ckpt", lck, "--data", val, "--max-tokens", "1024", "--json")
rb = tern("eval", "--ckpt", base_ck, "--data", val, "--max-tokens", "1024", "--json")
if ok(r, "tern eval reads the LoRA checkpoint") and ok(rb, "and the base") and "val_loss" in s:
    ev, evb = (json.loads(x.stdout.strip().splitlines()[-1])["val_loss"] for x in (r, rb))
    check(abs(ev - s["val_loss"]) < 1e-4, f"tern eval {ev:.6f} == the run's last validation {s['val_loss']:.6f}")
    check(ev < evb - 0.01, f"the adapters improved the base on held-out data: {evb:.6f} -> {ev:.6f}")
art = os.path.join(d, "m.tern")
ok(tern("export", "--ckpt", lck, "--merge-lora", "-o", art), "export --merge-lora writes an artifact")
check(os.path.exists(art), "artifact written")

print("a different base")
moved = os.path.join(d, "base_copy.h5")
shutil.copy(base_ck, moved)
ok(tern("train", cfg_path, "--quiet", "--set", "name=other", "--set", "train.max_steps=3"), "another base trains")
shutil.copy(os.path.join(runs, "other", "ckpt", "latest.h5"), base_ck)  # the stored path now holds another base
r = tern("train", "--quiet", "--resume", os.path.join(runs, "lora_rs"), "--set", "train.max_steps=14")
lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
check(r.returncode != 0 and len(lines) == 1 and "hash" in r.stderr, f"resume refuses another base: {lines[-1:]} ")
r = tern("export", "--ckpt", lck, "--merge-lora", "-o", art + "2")
check(r.returncode != 0 and "hash" in r.stderr and not os.path.exists(art + "2"), "export refuses it too")
ok(tern("export", "--ckpt", lck, "--merge-lora", "--base", moved, "-o", art + "3"), "export --base finds the right one")
shutil.copy(moved, base_ck)

print("QAT bases")
for kind in ("int5", "ternary"):
    r = tern("train", cfg_path, "--json", *lora_sets(f"q_{kind}", "--set", "quant.qat=true", "--set", f"quant.weights={kind}",
                                                      "--set", "quant.min_numel=0", steps=6))
    ok(r, f"LoRA on a {kind} QAT base trains ({summary(r).get('val_loss')})")
    ok(tern("export", "--ckpt", os.path.join(runs, f"q_{kind}", "ckpt", "latest.h5"), "--merge-lora", "-o", art + kind),
       f"and exports merged, then quantized ({kind})")

print("distillation")
tfile = os.path.join(d, "teacher_train.h5")
ok(tern("logits", "--ckpt", base_ck, "--data", train, "-o", tfile, "--k", "8"), "teacher logits of the base")
r = tern("train", cfg_path, "--json", *lora_sets("dist", "--set", f"distill.teacher={tfile}", steps=6))
ds = summary(r)
check(ds.get("method") == "distill" and ds.get("finetune") == "lora", f"LoRA + distillation trains ({ds.get('val_loss', ds)})")

print("peak RSS")
# a 4.2 M-parameter GPT (16.8 MB of weights): full fine-tuning adds their gradients and AdamW's two
# moments (~50 MB), LoRA adds next to nothing; one step each on 1 x 32 tokens
big = ["--set", 'model={"arch":"gpt","vocab_size":4096,"layers":4,"dim":256,"heads":4,"kv_heads":2,"seq_len":32}',
       "--set", "train.batch_tokens=32", "--set", "train.micro_batch=1", "--set", "train.eval_at_end=false",
       "--set", "data.val=", "--set", "train.max_steps=1"]
rb = tern("train", cfg_path, "--quiet", "--set", "name=big_base", *big)
ok(rb, "a 4.2 M-parameter base")
big_ck = os.path.join(runs, "big_base", "ckpt", "latest.h5")
full = summary(tern("train", cfg_path, "--json", "--set", "name=big_full", "--set", f"train.init_from={big_ck}", *big))
lo = summary(tern("train", cfg_path, "--json", "--set", "name=big_lora", "--set",
                  "train.lora=" + json.dumps({"rank": 8, "alpha": 16, "base": big_ck}), *big))
if check("peak_rss_mb" in full and "peak_rss_mb" in lo, f"both fine-tune [{full.get('err', '')}{lo.get('err', '')}]"):
    check(lo["peak_rss_mb"] < full["peak_rss_mb"] - 25,
          f"LoRA peak RSS {lo['peak_rss_mb']:.1f} MB < full fine-tuning {full['peak_rss_mb']:.1f} MB - 25 MB")

print("MPI")
if not MPIEXEC or not shutil.which(MPIEXEC):
    print("  SKIP: tern was built without MPI")
else:
    # no dropout: its masks follow each process's forward count, which differs between the two layouts
    one = summary(tern("train", cfg_path, "--json", *lora_sets("mp1", steps=6, dropout=0.0)))
    two = summary(tern("train", cfg_path, "--json", *lora_sets("mp2", steps=6, dropout=0.0), np_=2))
    if check("err" not in one and "err" not in two, f"1 process and 2 ranks train [{one.get('err', '')}{two.get('err', '')}]"):
        a, _ = params(os.path.join(runs, "mp1", "ckpt", "latest.h5"))
        c, _ = params(os.path.join(runs, "mp2", "ckpt", "latest.h5"))
        worst = max(float(np.max(np.abs(a[k] - c[k]))) for k in a)
        check(worst < 1e-4, f"2 ranks == 1 process with 2 micro-steps (adapters max diff {worst:.2e})")
        check(abs(one["val_loss"] - two["val_loss"]) < 1e-4, f"val loss {one['val_loss']:.6f} vs {two['val_loss']:.6f}")
check.finish("e2e_lora_train")
