"""Distillation through `tern train` (distill.teacher) from teacher-logit files written by
`tern logits`, on synthetic shards: with alpha = 0 it is exactly plain training; with alpha = 1
(no labels at all) the student learns from the teacher's top-k alone; the mix beats plain
training at the same steps here; 2 MPI ranks equal 1 process (when tern has MPI); a teacher
of another vocabulary, a shard without a teacher and a teacher that does not cover the
training windows each give one clear error line."""
import json
import os
import shutil
import tempfile

from e2e_common import MPIEXEC, Checks, metric, summary, synthetic_language, tern, write_shard

check = Checks()


def losses(run):
    return metric(os.path.join(d, "runs", run), "train_loss")


d = tempfile.mkdtemp(prefix="tern_distill_")
seq = synthetic_language(40000)
train, val = os.path.join(d, "syn_train_000000.bin"), os.path.join(d, "syn_val_000000.bin")
write_shard(train, seq[:30000])
write_shard(val, seq[30000:])
cfg = {
    "name": "teacher", "out_dir": os.path.join(d, "runs"), "seed": 3, "threads": 1,
    "model": {"arch": "gpt", "vocab_size": 64, "layers": 3, "dim": 32, "heads": 2, "kv_heads": 1},
    "data": {"train": os.path.join(d, "syn_train_*.bin"), "val": os.path.join(d, "syn_val_*.bin"), "seq_len": 32},
    "optim": {"schedule": {"kind": "warmdown", "warmdown_steps": 4}},
    "train": {"batch_tokens": 256, "micro_batch": 4, "max_steps": 60, "log_every": 1, "val_every": 0},
}
cfg_path = os.path.join(d, "cfg.json")
with open(cfg_path, "w") as f:
    json.dump(cfg, f)
teacher_ck = os.path.join(d, "runs", "teacher", "ckpt", "latest.h5")
tfile = os.path.join(d, "teacher_train.h5")

print("teacher")
t = summary(tern("train", cfg_path, "--json"))
r = tern("logits", "--ckpt", teacher_ck, "--data", train, "-o", tfile, "--k", "16")
check(r.returncode == 0 and "val_loss" in t, f"teacher trained (val_loss {t.get('val_loss', float('nan')):.4f}) and its top-16 written")

print("students, 10 steps each")
STU = ["--set", "train.max_steps=10", "--json"]
plain = summary(tern("train", cfg_path, "--set", "name=plain", *STU))
runs = {}
for a in ("0", "0.5", "1"):
    runs[a] = summary(tern("train", cfg_path, "--set", f"name=a{a}", "--set", f"distill.teacher={tfile}",
                           "--set", f"distill.alpha={a}", *STU))
ok = all("val_loss" in x for x in [plain, *runs.values()])
check(ok and all(x.get("method") == "distill" for x in runs.values()), f"all runs finish {[x.get('err') for x in runs.values()]}")
if ok:
    lp, l0 = losses("plain"), losses("a0")
    worst = max(abs(l0[k] - lp[k]) / lp[k] for k in lp)
    check(worst < 1e-5 and abs(runs["0"]["val_loss"] - plain["val_loss"]) < 1e-6,
          f"alpha 0 == plain training: losses within {worst:.1e}, val {runs['0']['val_loss']:.6f} vs {plain['val_loss']:.6f}")
    check(runs["1"]["val_loss"] < 2.0, f"alpha 1 (teacher only, no labels): val_loss 4.16 at init -> {runs['1']['val_loss']:.4f}")
    check(runs["0.5"]["val_loss"] < plain["val_loss"],
          f"alpha 0.5 beats plain training at 10 steps: {runs['0.5']['val_loss']:.4f} vs {plain['val_loss']:.4f}")

if MPIEXEC and shutil.which(MPIEXEC):
    print("two MPI ranks")
    r = tern("train", cfg_path, "--set", "name=mpi", "--set", f"distill.teacher={tfile}", *STU, np_=2)
    if r.returncode == 0:
        one, two = losses("a0.5"), losses("mpi")
    check(r.returncode == 0, f"2 ranks run {r.stderr[-300:] if r.returncode else ''}")
    if r.returncode == 0:
        worst = max(abs(two[k] - one[k]) / one[k] for k in one)
        check(worst < 1e-5, f"2 ranks == 1 process, worst {worst:.1e}")

print("errors")
cfg2 = dict(cfg, model=dict(cfg["model"], vocab_size=80))
with open(os.path.join(d, "cfg80.json"), "w") as f:
    json.dump(cfg2, f)
r = tern("train", os.path.join(d, "cfg80.json"), "--set", "name=e1", "--set", f"distill.teacher={tfile}")
check(r.returncode == 1 and r.stderr.count("\n") == 1 and "vocabulary" in r.stderr and "teacher_train.h5" in r.stderr, r.stderr.strip())
vfile = os.path.join(d, "teacher_val.h5")
tern("logits", "--ckpt", teacher_ck, "--data", val, "-o", vfile, "--k", "16")
r = tern("train", cfg_path, "--set", "name=e2", "--set", f"distill.teacher={vfile}")
check(r.returncode == 1 and r.stderr.count("\n") == 1 and "syn_train_000000.bin" in r.stderr, r.stderr.strip())
short = os.path.join(d, "short", "teacher_train.h5")
os.makedirs(os.path.dirname(short))
tern("logits", "--ckpt", teacher_ck, "--data", train, "-o", short, "--k", "16", "--max-tokens", "1000")
r = tern("train", cfg_path, "--set", "name=e3", "--set", f"distill.teacher={short}")
check(r.returncode == 1 and r.stderr.count("\n") == 1 and "covers" in r.stderr, r.stderr.strip())

shutil.rmtree(d, ignore_errors=True)
check.finish("distill_train")
