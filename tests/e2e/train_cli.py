"""End to end through the `tern` binary on synthetic shards (no outside data): bad config keys,
bit-exact resume, h5py-readable checkpoints, corrupt checkpoints, divergence, signals,
refusing to clobber a run, `tern info` and `tern eval` agreeing with the trainer."""
import json
import os
import signal
import subprocess
import tempfile
import time

import numpy as np
from e2e_common import Checks, synthetic_language, write_shard

BIN = os.path.join(os.environ.get("TERN_BIN", "build/bin"), "tern")
check = Checks()


def tern(*args, timeout=300):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def losses(run_dir):
    out = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            o = json.loads(line)
            if "train_loss" in o:
                out[o["step"]] = o["train_loss"]
    return out


d = tempfile.mkdtemp(prefix="tern_e2e_")
seq = synthetic_language(40000)
write_shard(os.path.join(d, "syn_train_000000.bin"), seq[:30000])
write_shard(os.path.join(d, "syn_val_000000.bin"), seq[30000:])
cfg = {
    "name": "r", "out_dir": os.path.join(d, "runs"), "seed": 3,
    "model": {"arch": "gpt", "vocab_size": 64, "layers": 3, "dim": 32, "heads": 2, "kv_heads": 1},
    "data": {"train": os.path.join(d, "syn_train_*.bin"), "val": os.path.join(d, "syn_val_*.bin"), "seq_len": 32},
    "optim": {"schedule": {"kind": "warmdown", "warmdown_steps": 6}, "ema": {"enabled": True, "start_frac": 0.5}},
    "train": {"batch_tokens": 256, "micro_batch": 4, "max_steps": 14, "log_every": 1, "val_every": 7, "grad_clip": 1.0},
}
cfg_path = os.path.join(d, "cfg.json")
with open(cfg_path, "w") as f:
    json.dump(cfg, f)

print("bad config keys and values")
r = tern("train", cfg_path, "--set", "model.layer=3")
check(r.returncode == 1 and "model.layer" in r.stderr and r.stderr.count("\n") == 1, f"unknown key: {r.stderr.strip()}")
r = tern("train", cfg_path, "--set", "train.max_steps=\"ten\"")
check(r.returncode == 1 and "train.max_steps" in r.stderr, f"wrong type: {r.stderr.strip()}")
r = tern("train", os.path.join(d, "missing.json"))
check(r.returncode == 1 and "missing.json" in r.stderr, f"missing file: {r.stderr.strip()}")
with open(os.path.join(d, "broken.json"), "w") as f:
    f.write('{"name": "x",\n "model": {')
r = tern("train", os.path.join(d, "broken.json"))
check(r.returncode == 1 and "line" in r.stderr, f"invalid JSON: {r.stderr.strip()}")

print("training, checkpoint, bit-exact resume")
r = tern("train", cfg_path, "--set", "name=full", "--json")
check(r.returncode == 0, "14-step run exits 0")
summary = json.loads(r.stdout.strip().splitlines()[-1])
full = losses(os.path.join(d, "runs", "full"))
check(len(full) == 14 and full[14] < full[1] - 0.5, f"loss falls: {full[1]:.4f} -> {full[14]:.4f}")
r = tern("train", cfg_path, "--set", "name=split", "--stop-after", "6")
check(r.returncode == 0, "stop after 6 steps")
r = tern("train", "--resume", os.path.join(d, "runs", "split"))
check(r.returncode == 0, f"resume exits 0 {r.stderr[-300:] if r.returncode else ''}")
split = losses(os.path.join(d, "runs", "split"))
check(split == full, "train 14 == train 6 + resume to 14: identical loss sequence (all 14 values bit-equal)")
import h5py  # noqa: E402

with h5py.File(os.path.join(d, "runs", "full", "ckpt", "latest.h5"), "r") as f:
    names = []
    f["params"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    check("tok_emb.weight" in names and "blocks.2.mlp.fc.weight" in names and f["state"].attrs["step"] == 14,
          f"h5py reads the checkpoint: {len(names)} parameters, step {f['state'].attrs['step']}")
    check(json.loads(f.attrs["config"])["model"]["layers"] == 3, "resolved config stored in the checkpoint")
    check("ema" in f and "optim" in f, "optimizer state and EMA weights stored")

print("tern info / tern eval")
ck = os.path.join(d, "runs", "full", "ckpt", "latest.h5")
r = tern("info", ck, "--json")
info = json.loads(r.stdout)
check(r.returncode == 0 and info["step"] == 14 and info["params"] == summary["params"], "info --json: step and parameter count")
r = tern("eval", "--ckpt", ck, "--data", os.path.join(d, "syn_val_*.bin"), "--json", "--ema")
ev = json.loads(r.stdout)
check(r.returncode == 0 and abs(ev["val_loss"] - summary["val_loss"]) < 1e-6,
      f"tern eval (EMA weights) reproduces the trainer's final val_loss: {ev['val_loss']:.6f} vs {summary['val_loss']:.6f}")

print("score-first LoRA test-time training")
val_glob = os.path.join(d, "syn_val_*.bin")
def ev(*extra):
    r = tern("eval", "--ckpt", ck, "--data", val_glob, "--json", *extra)
    return json.loads(r.stdout) if r.returncode == 0 else {"err": r.stderr}
# with lr 0 nothing is learned and chunked scoring is exactly sliding-window scoring with stride =
# chunk (each chunk sees the last `context` tokens): an independent check of the windows
a, sl = ev("--ttt", "--ttt-chunk", "16", "--ttt-lr", "0"), ev("--sliding", "16")
check(abs(a["val_loss"] - sl["val_loss"]) < 1e-6 and a["tokens"] == sl["tokens"] == 10000,
      f"TTT with lr 0 == sliding eval, stride 16: {a['val_loss']:.6f} vs {sl['val_loss']:.6f} over {a['tokens']:.0f} targets")
t1 = ev("--ttt", "--ttt-chunk", "16", "--ttt-lr", "0.01")
check(t1["val_loss"] != a["val_loss"] and t1["tokens"] == a["tokens"], f"adapters learn: {a['val_loss']:.6f} -> {t1['val_loss']:.6f}")
bad = ev("--ttt", "--ttt-chunk", "64")
check("err" in bad and "chunk" in bad["err"], "a chunk longer than the context is refused")

print("teacher logits")
tf = os.path.join(d, "teacher.h5")
r = tern("logits", "--ckpt", ck, "--data", os.path.join(d, "syn_val_000000.bin"), "-o", tf, "--k", "64", "--dtype", "f32")
check(r.returncode == 0, "tern logits (full vocabulary as top-k) exits 0")
r = tern("eval", "--ckpt", ck, "--data", os.path.join(d, "syn_val_*.bin"), "--json")
ev_plain = json.loads(r.stdout)
with h5py.File(tf, "r") as f:
    idx, val, lse = np.array(f["indices"]), np.array(f["values"]), np.array(f["lse"])
    check(f.attrs["k"] == 64 and f.attrs["vocab_size"] == 64 and f.attrs["seq_len"] == 32, "attributes k, vocab_size, seq_len")
vt = np.fromfile(os.path.join(d, "syn_val_000000.bin"), dtype="<u2", offset=1024).astype(np.int64)
nw = (len(vt) - 1) // 32
tgt = vt[1:nw * 32 + 1]
logit_t = np.array([val[i][idx[i] == tgt[i]][0] for i in range(nw * 32)])
ce = float(np.mean(lse[:nw * 32] - logit_t))
check(len(lse) == len(vt) - 1 and abs(ce - ev_plain["val_loss"]) < 1e-4,
      f"cross-entropy from the teacher file {ce:.6f} == tern eval {ev_plain['val_loss']:.6f}")
r = tern("logits", "--ckpt", ck, "--data", os.path.join(d, "syn_val_000000.bin"), "-o", tf + "2", "--k", "500")
check(r.returncode == 2 or (r.returncode == 1 and "exceeds" in r.stderr), "k larger than the vocabulary is refused")

print("corrupt and partial checkpoints")
data = open(ck, "rb").read()
for label, blob in (("truncated", data[: len(data) // 2]), ("garbage", b"\x89HDF\r\n\x1a\n" + bytes(1000)), ("empty", b"")):
    p = os.path.join(d, f"{label}.h5")
    open(p, "wb").write(blob)
    r = tern("eval", "--ckpt", p, "--data", os.path.join(d, "syn_val_*.bin"))
    check(r.returncode == 1 and p in r.stderr and r.stderr.count("\n") == 1, f"{label}: {r.stderr.strip()}")
bad_run = os.path.join(d, "runs", "badrun", "ckpt")
os.makedirs(bad_run)
open(os.path.join(bad_run, "latest.h5"), "wb").write(data[:5000])
r = tern("train", "--resume", os.path.join(d, "runs", "badrun"))
check(r.returncode == 1 and "latest.h5" in r.stderr, f"resume from a truncated checkpoint: {r.stderr.strip()}")
r = tern("train", cfg_path, "--set", "name=full")
check(r.returncode == 1 and "--resume" in r.stderr, "an existing run is not overwritten without --overwrite")

print("non-finite loss: skipped updates, then a clear stop")
r = tern("train", cfg_path, "--set", "name=nan", "--set", "optim.groups.matrix.lr=1e30", "--set", "optim.groups.scalar.lr=1e30",
         "--set", "optim.groups.embed.lr=1e30", "--set", "train.max_bad_steps=3", "--set", "train.grad_clip=0")
check(r.returncode == 1 and "diverged" in r.stderr and "skipped" in r.stderr, "divergence stops with a message: "
      + r.stderr.strip().splitlines()[-1][:160])

print("SIGINT writes a checkpoint and exits 130; the run resumes")
long = ["train", cfg_path, "--set", "name=sig", "--set", "train.max_steps=100000", "--set", "train.val_every=0",
        "--set", "train.eval_at_end=false"]
p = subprocess.Popen([BIN, *long], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(3)
p.send_signal(signal.SIGINT)
out, err = p.communicate(timeout=60)
with h5py.File(os.path.join(d, "runs", "sig", "ckpt", "latest.h5"), "r") as f:
    step = int(f["state"].attrs["step"])
check(p.returncode == 130 and step > 0 and "resume" in err, f"exit {p.returncode}, checkpoint at step {step}")
r = tern("train", "--resume", os.path.join(d, "runs", "sig"), "--set", f"train.max_steps={step + 2}")
check(r.returncode == 0 and "done" in r.stderr, "resumed past the interruption")

subprocess.run(["rm", "-rf", d])
check.finish("train_cli")
