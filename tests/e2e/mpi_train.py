"""Data-parallel training through MPI (`mpirun -np 2 tern train`) on synthetic shards:

- 2 ranks x micro-batch B train the same steps as 1 process with 2 micro-steps of B (the loader
  gives rank r the r-th slice of each step's windows, and the gradient is averaged): the loss
  sequence, the validation loss and the final parameters agree to float rounding;
- resume is bit-exact at 2 ranks (train 6, stop, resume to 12 == train 12), and a 2-rank
  checkpoint resumes on 1 process (the loader cursor is global);
- a wall-clock budget and SIGTERM stop both ranks at the same step with one checkpoint;
- errors every rank hits alike print one line (from rank 0) and exit non-zero, without hanging;
- with several ranks on one host and no thread setting, the ranks share the cores.

Skips (prints SKIP) when tern was built without MPI or mpirun is missing."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from e2e_common import BIN, ENV, MPIEXEC, Checks, metric, synthetic_language, tern, write_shard

if not MPIEXEC or not shutil.which(MPIEXEC):
    print("SKIP: tern was built without MPI (install libopenmpi-dev / openmpi-bin and reconfigure)")
    sys.exit(0)

check = Checks()
metrics = metric


def params(run_dir):
    import h5py
    with h5py.File(os.path.join(run_dir, "ckpt", "latest.h5"), "r") as f:
        out = {}
        f["params"].visititems(lambda n, o: out.__setitem__(n, np.array(o)) if isinstance(o, h5py.Dataset) else None)
        return out


def rel(a, b):
    return abs(a - b) / max(abs(b), 1.0)  # losses in nats: floor 1


d = tempfile.mkdtemp(prefix="tern_mpi_")
seq = synthetic_language(40000)
write_shard(os.path.join(d, "syn_train_000000.bin"), seq[:30000])
write_shard(os.path.join(d, "syn_val_000000.bin"), seq[30000:])
runs = os.path.join(d, "runs")
cfg = {
    "name": "r", "out_dir": runs, "seed": 3, "threads": 1,
    "model": {"arch": "gpt", "vocab_size": 64, "layers": 3, "dim": 32, "heads": 2, "kv_heads": 1},
    "data": {"train": os.path.join(d, "syn_train_*.bin"), "val": os.path.join(d, "syn_val_*.bin"), "seq_len": 32},
    "optim": {"schedule": {"kind": "warmdown", "warmdown_steps": 6}, "ema": {"enabled": True, "start_frac": 0.5}},
    "train": {"batch_tokens": 256, "micro_batch": 4, "max_steps": 12, "log_every": 1, "val_every": 6, "grad_clip": 1.0},
}
cfg_path = os.path.join(d, "cfg.json")
with open(cfg_path, "w") as f:
    json.dump(cfg, f)

print("2 ranks == 1 process with the same global batch")
r1 = tern("train", cfg_path, "--set", "name=one", "--json")
r2 = tern("train", cfg_path, "--set", "name=two", "--json", np_=2)
check(r1.returncode == 0 and r2.returncode == 0, f"both runs exit 0 {r2.stderr[-400:] if r2.returncode else ''}")
s2 = json.loads(r2.stdout.strip().splitlines()[-1])
check(len(r2.stdout.strip().splitlines()) == 1 and s2["ranks"] == 2, "one summary on stdout (rank 0), ranks = 2")
check("2 ranks" in r2.stderr and r2.stderr.count("tern train: done") == 1, "rank 0 alone prints progress")
l1, l2 = metrics(os.path.join(runs, "one"), "train_loss"), metrics(os.path.join(runs, "two"), "train_loss")
worst = max(rel(l2[k], l1[k]) for k in l1)
check(len(l1) == len(l2) == 12 and worst < 1e-5, f"12 training losses agree, worst relative difference {worst:.2e} (tolerance 1e-5)")
v1, v2 = metrics(os.path.join(runs, "one"), "val_loss"), metrics(os.path.join(runs, "two"), "val_loss")
worst_v = max(rel(v2[k], v1[k]) for k in v1)
check(sorted(v1) == sorted(v2) == [6, 12] and worst_v < 1e-5,
      f"validation split across ranks: val_loss at steps 6 and 12 agree, worst {worst_v:.2e}")
p1, p2 = params(os.path.join(runs, "one")), params(os.path.join(runs, "two"))
worst_p = max(float(np.max(np.abs(p2[n] - p1[n]))) for n in p1)
check(p1.keys() == p2.keys() and worst_p < 1e-4, f"final parameters agree: {len(p1)} tensors, worst |diff| {worst_p:.2e} (tolerance 1e-4)")

print("resume")
r = tern("train", cfg_path, "--set", "name=split", "--stop-after", "6", np_=2)
check(r.returncode == 0, "2 ranks: stop after 6 steps")
r = tern("train", "--resume", os.path.join(runs, "split"), np_=2)
check(r.returncode == 0, f"2 ranks: resume exits 0 {r.stderr[-300:] if r.returncode else ''}")
check(metrics(os.path.join(runs, "split"), "train_loss") == l2, "2-rank train 12 == train 6 + resume to 12 (all 12 losses bit-equal)")
r = tern("train", cfg_path, "--set", "name=shrink", "--stop-after", "6", np_=2)
r = tern("train", "--resume", os.path.join(runs, "shrink"))
ls = metrics(os.path.join(runs, "shrink"), "train_loss")
worst = max(rel(ls[k], l2[k]) for k in l2)
check(r.returncode == 0 and worst < 1e-5, f"a 2-rank checkpoint resumes on 1 process (same windows): worst {worst:.2e}")

print("stopping together")
r = tern("train", cfg_path, "--set", "name=clock", "--set", "train.max_steps=0", "--set", "train.max_seconds=2",
         "--set", "train.log_every=50", "--json", np_=2)
ok = r.returncode == 0
if ok:
    sc = json.loads(r.stdout.strip().splitlines()[-1])
check(ok and sc["steps"] > 5 and os.path.exists(os.path.join(runs, "clock", "ckpt", f"step_{sc['steps']}.h5")),
      f"2-second wall-clock budget: both ranks stop at the same step ({sc['steps'] if ok else '?'}) and rank 0 writes it")
p = subprocess.Popen([MPIEXEC, "-np", "2", BIN, "train", cfg_path, "--set", "name=sig", "--set", "train.max_steps=1000000",
                      "--set", "train.log_every=1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
time.sleep(3)
p.send_signal(signal.SIGTERM)
try:
    _, err = p.communicate(timeout=60)
    hung = False
except subprocess.TimeoutExpired:
    p.kill()
    _, err = p.communicate()
    hung = True
ck = [f for f in os.listdir(os.path.join(runs, "sig", "ckpt"))] if os.path.isdir(os.path.join(runs, "sig", "ckpt")) else []
check(not hung and "stopped by signal" in err and "latest.h5" in ck and len(ck) == 2,
      f"SIGTERM to mpirun: both ranks stop, one checkpoint ({sorted(ck)})")

print("errors")
r = tern("train", cfg_path, "--set", "name=bad", "--set", "train.bogus=1", np_=2, timeout=60)
lines = [x for x in r.stderr.splitlines() if x.startswith("tern train")]
check(r.returncode != 0 and len(lines) == 1 and "train.bogus" in lines[0], f"unknown key: one line, non-zero exit: {lines}")
r = tern("train", cfg_path, "--set", "name=bad2", "--set", "train.batch_tokens=128", np_=2, timeout=60)
lines = [x for x in r.stderr.splitlines() if x.startswith("tern train")]
check(r.returncode != 0 and len(lines) == 1 and "ranks" in lines[0], f"a batch the ranks cannot split: {lines}")
r = tern("train", cfg_path, "--set", "name=two", np_=2, timeout=60)
lines = [x for x in r.stderr.splitlines() if x.startswith("tern train")]
check(r.returncode != 0 and len(lines) == 1 and "already holds a run" in lines[0] and "rank 0" in lines[0],
      f"an error on rank 0 only ends every rank: {lines}")

print("threads")
env = dict(ENV)
env.pop("OMP_NUM_THREADS", None)
cfg_nt = dict(cfg)
cfg_nt.pop("threads")
with open(os.path.join(d, "cfg_nt.json"), "w") as f:
    json.dump(cfg_nt, f)
r = tern("train", os.path.join(d, "cfg_nt.json"), "--set", "name=nt", "--set", "train.max_steps=2", "--json", np_=2, env=env)
ok = r.returncode == 0
want = max(1, (os.cpu_count() or 1) // 2)
check(ok and json.loads(r.stdout.strip().splitlines()[-1])["threads"] == want,
      f"2 ranks on {os.cpu_count()} cores without a thread setting: {want} thread(s) each")

shutil.rmtree(d, ignore_errors=True)
check.finish("mpi_train")
