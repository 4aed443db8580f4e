"""Fault injection, run folders (`tern train`): one writer per folder, names that stay inside
out_dir, resume that writes where it was pointed, stale temporaries, checkpoint retention,
metrics without repeated steps, damaged loader state, runs that end non-finite.

Tiny runs (a 1-layer, 16-wide GPT on synthetic shards, one thread): the script takes seconds."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from fault_lib import (ENV, TERN, Checks, expect_error, expect_ok, intact, snapshot, synthetic_language, tern,
                       write_shard)

check = Checks()
d = tempfile.mkdtemp(prefix="tern_faults_runs_")
runs = os.path.join(d, "runs")
seq = synthetic_language(12000)
write_shard(os.path.join(d, "syn_train_000000.bin"), seq[:10000])
write_shard(os.path.join(d, "syn_val_000000.bin"), seq[10000:])
cfg = {
    "name": "a", "out_dir": runs, "seed": 3, "threads": 1,
    "model": {"arch": "gpt", "vocab_size": 64, "layers": 1, "dim": 16, "heads": 2, "kv_heads": 1},
    "data": {"train": os.path.join(d, "syn_train_*.bin"), "val": os.path.join(d, "syn_val_*.bin"), "seq_len": 16},
    "train": {"batch_tokens": 64, "micro_batch": 4, "max_steps": 4, "log_every": 1, "val_every": 0, "ckpt_every": 2,
              "val_tokens": 128},
}
cfg_path = os.path.join(d, "cfg.json")
with open(cfg_path, "w") as f:
    json.dump(cfg, f)


def train(*args, **kw):
    return tern("train", cfg_path, "--quiet", *args, **kw)


def rd(name):
    return os.path.join(runs, name)


def ckpts(name):
    return sorted(os.listdir(os.path.join(rd(name), "ckpt")))


def metrics(name):
    with open(os.path.join(rd(name), "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def losses(name):
    return [(o["step"], o["train_loss"]) for o in metrics(name) if "train_loss" in o]


def state(path):
    r = tern("info", path, "--json")
    return json.loads(r.stdout) if r.returncode == 0 else {}


expect_ok(check, train("--set", "train.max_steps=8"), "a good 8-step run (the folder the faults below must not touch)")
good = snapshot(rd("a"))

print("names that would leave out_dir")
before = snapshot(d)
escape = f"tern_faults_escape_{os.getpid()}"
for sets in (["name=.."], ["name=."], ['name=""'], ["name=x/y"], ['out_dir=""', f"name={escape}"]):
    key = sets[0].split("=")[0]
    r = train(*[x for s in sets for x in ("--set", s)], "--set", "train.max_steps=1")
    expect_error(check, r, f"{sets[0]} refused", names=(f"config: {key}",), allow_lines=1)
intact(check, d, before, "nothing written anywhere")
check(not os.path.exists("/" + escape), f"out_dir=\"\" did not write /{escape}")

print("one tern train per run folder")


def hold(name):
    """Starts a 60-second run on runs/NAME and returns once it has written its first checkpoint."""
    p = subprocess.Popen([TERN, "train", cfg_path, "--quiet", "--set", f"name={name}", "--set", "train.max_steps=0",
                          "--set", "train.max_seconds=60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    for _ in range(600):
        if os.path.exists(os.path.join(rd(name), "ckpt", "latest.h5")):
            break
        time.sleep(0.05)
    return p


long_run = hold("held")
pid = str(long_run.pid)
r = train("--set", "name=held", "--overwrite")
expect_error(check, r, "a second fresh run on the folder refuses, naming the holder", names=(rd("held"), f"pid {pid}"), allow_lines=1)
r = tern("train", "--resume", rd("held"), "--quiet")
expect_error(check, r, "a resume of the held folder refuses too", names=(f"pid {pid}",), allow_lines=1)
mpiexec = shutil.which("mpirun")
with_mpi = mpiexec and "libmpi" in subprocess.run(["ldd", TERN], capture_output=True, text=True).stdout
if with_mpi and not os.environ.get("ASAN_OPTIONS"):  # Open MPI's own allocations would read as leaks
    r = subprocess.run([mpiexec, "-np", "2", TERN, "train", cfg_path, "--quiet", "--set", "name=held", "--overwrite"],
                       capture_output=True, text=True, env=ENV, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("tern train")]
    check(r.returncode != 0 and len(lines) == 1 and f"pid {pid}" in lines[0],
          f"2 MPI ranks: rank 0 is refused the lock and both ranks stop, one line: {lines}")
else:
    print("  SKIP the MPI case (tern without MPI, or under a sanitizer)")
long_run.send_signal(signal.SIGTERM)
try:
    long_run.communicate(timeout=60)
except subprocess.TimeoutExpired:
    long_run.kill()
check(long_run.returncode == 143, f"the holder was undisturbed and stops on SIGTERM with 143 (got {long_run.returncode})")
expect_ok(check, tern("train", "--resume", rd("held"), "--quiet", "--set", "train.max_seconds=0.5"),
          "once the holder is gone the folder can be resumed")
killed = hold("killed")
killed.kill()
killed.communicate()
expect_ok(check, tern("train", "--resume", rd("killed"), "--quiet", "--set", "train.max_seconds=0.5"),
          "a holder killed with SIGKILL leaves no lock behind")

print("a moved run resumes where it was pointed")
expect_ok(check, train("--set", "name=m"), "run m")
os.rename(rd("m"), rd("m_moved"))
expect_ok(check, train("--set", "name=m"), "a new run takes the name m")
m_new = snapshot(rd("m"))
r = tern("train", "--resume", rd("m_moved") + "/", "--quiet", "--set", "train.max_steps=6")
expect_ok(check, r, "resume the moved folder")
intact(check, rd("m"), m_new, "the run now called m")
with open(os.path.join(rd("m_moved"), "config.json")) as f:
    moved_cfg = json.load(f)
check(state(os.path.join(rd("m_moved"), "ckpt", "latest.h5")).get("step") == 6 and moved_cfg["name"] == "m_moved",
      "the moved folder holds step 6, and its config.json its own name")

print("stale temporaries")
dead = subprocess.Popen(["true"])
dead.wait()
mine = os.getpid()  # alive: its temporary stays
shutil.copytree(rd("a"), rd("t"))
stale = [os.path.join(rd("t"), "ckpt", f"step_9.h5.tmp.{dead.pid}"), os.path.join(rd("t"), "ckpt", f"latest.h5.tmp.{dead.pid}"),
         os.path.join(rd("t"), "config.json.tmp.Ab3xYz")]
live = os.path.join(rd("t"), "ckpt", f"step_9.h5.tmp.{mine}")
for p in stale + [live]:
    with open(p, "wb") as f:
        f.write(b"partial")
r = tern("train", "--resume", rd("t"), "--set", "train.max_steps=9")
expect_ok(check, r, "resume a folder with temporaries of a dead writer")
left = [os.path.basename(p) for p in stale + [live] if os.path.exists(p)]
check(left == [os.path.basename(live)] and "removed 3 stale temporary" in r.stderr,
      f"the dead pid's temporaries removed, the live one's kept: left {left}")

print("checkpoint retention")
expect_ok(check, train("--set", "name=keep2", "--set", "train.ckpt_every=1", "--set", "train.max_steps=8",
                       "--set", "train.keep_ckpts=2"), "ckpt_every=1, keep_ckpts=2")
check(ckpts("keep2") == ["latest.h5", "step_7.h5", "step_8.h5"], f"the newest 2 and latest.h5 are kept: {ckpts('keep2')}")
check(state(os.path.join(rd("keep2"), "ckpt", "latest.h5")).get("step") == 8, "latest.h5 is step 8")
expect_ok(check, train("--set", "name=keep0", "--set", "train.ckpt_every=1", "--set", "train.max_steps=5",
                       "--set", "train.keep_ckpts=0"), "keep_ckpts=0")
check(ckpts("keep0") == ["latest.h5"] + [f"step_{i}.h5" for i in range(1, 6)], f"keep_ckpts=0 keeps every one: {ckpts('keep0')}")
check(ckpts("a") == ["latest.h5", "step_4.h5", "step_6.h5", "step_8.h5"], f"the default keeps 3: {ckpts('a')}")
r = train("--set", "name=keepbad", "--set", "train.keep_ckpts=-1")
expect_error(check, r, "keep_ckpts=-1 refused", names=("train.keep_ckpts",), allow_lines=1)

print("metrics after a resume")
expect_ok(check, train("--set", "name=s", "--stop-after", "4", "--set", "train.max_steps=8"), "stop after 4 of 8 steps")
with open(os.path.join(rd("s"), "metrics.jsonl"), "a") as f:  # what a killed process logged past its checkpoint
    f.write('{"step":5,"train_loss":1.0}\n{"step":6,"event":"non_finite_skipped"}\n{"step":7,"tra')
expect_ok(check, tern("train", "--resume", rd("s"), "--quiet"), "resume to 8")
steps = [s for s, _ in losses("s")]
check(steps == list(range(1, 9)), f"each step logged once: {steps}")
check(losses("s") == losses("a"), "and the 8 losses are bit-equal to the uninterrupted run's")

print("damaged loader state")
import h5py  # noqa: E402

for key, value in (("loader_pos", 2 ** 62), ("loader_pos", 10 ** 6), ("loader_epoch", -5), ("qat_active", 7),
                   ("bad_steps", 100)):
    name = f"bad_{key}_{abs(value)}"
    shutil.copytree(rd("a"), rd(name))  # copies latest.h5 apart from step_8.h5 (its hard link in "a")
    with h5py.File(os.path.join(rd(name), "ckpt", "latest.h5"), "r+") as f:
        f["state"].attrs[key] = value
    before = snapshot(rd(name))
    r = tern("train", "--resume", rd(name), "--quiet", "--set", "train.max_steps=12", timeout=60)
    expect_error(check, r, f"/state {key}={value} refused (no endless loop)", names=(os.path.join(rd(name), "ckpt", "latest.h5"), key),
                 allow_lines=1)
    intact(check, rd(name), before, "the damaged run")

print("runs that end non-finite")
shutil.copytree(rd("a"), rd("nan"))
before = snapshot(os.path.join(rd("nan"), "ckpt"))
huge = [f"optim.groups.{g}.lr=1e30" for g in ("matrix", "scalar", "embed")]
r = tern("train", "--resume", rd("nan"), "--set", "train.max_steps=12", "--set", "train.ckpt_every=0", "--set", "train.grad_clip=0",
         *[x for h in huge for x in ("--set", h)], "--json")
expect_error(check, r, "every step after the first non-finite, fewer than max_bad_steps: the run fails", names=("non-finite",))
summary = json.loads(r.stdout) if r.stdout.strip() else {}
with open(os.path.join(rd("nan"), "summary.json")) as f:
    check(summary.get("status") == "failed" and json.load(f).get("status") == "failed",
          "--json and summary.json say status \"failed\"")
intact(check, os.path.join(rd("nan"), "ckpt"), before, "the last good checkpoints (latest.h5 not replaced)")
overflow = [f"optim.groups.{g}.lr=3e38" for g in ("matrix", "scalar", "embed")]
r = train("--set", "name=inf", "--set", "train.ckpt_every=1", "--set", "optim.schedule.kind=constant", "--set", "train.grad_clip=0",
          *[x for h in overflow for x in ("--set", h)])
expect_error(check, r, "an update that overflows to non-finite parameters stops the run", names=("parameters are not finite",),
             allow_lines=1)
check(not os.path.exists(os.path.join(rd("inf"), "ckpt", "latest.h5")), "and they were never written")

intact(check, rd("a"), good, "the first run, after everything above")
shutil.rmtree(d, ignore_errors=True)
check.finish("faults_runs")
