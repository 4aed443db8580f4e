"""Small inputs for the data / checkpoint / tokenizer fault scripts (faults_data.py, faults_ckpt.py,
faults_tokenizer.py): synthetic shards, a 2 x 64 GPT config, one short trained run, and two ways
to make a write hit a full disk without privileges:
  - file_size_limit: RLIMIT_FSIZE with SIGXFSZ ignored, so write() fails with EFBIG
    ("File too large") once a file would pass the limit (works everywhere);
  - tmpfs_script: a tiny tmpfs mounted in a user + mount namespace (`unshare -rm`), so writes fail
    with ENOSPC ("No space left on device"); skipped where namespaces are not allowed."""
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
from types import SimpleNamespace

from fault_lib import ENV, TERN, Checks, expect_error, run, snapshot, synthetic_language, tern, write_shard

VOCAB, SEQ = 64, 32
# tern re-executes itself once to set this (train/main.c); setting it here halves each case's time
ENV.setdefault("OMP_WAIT_POLICY", "passive")


def refused(checks, r, what, names=()):
    """expect_error with exactly one stderr line, which is shown after the case's name."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    shown = lines[-1][:200] if lines else "(no message)"
    return expect_error(checks, r, f"{what} -> {shown}", names=names, allow_lines=1)


def make_inputs(d, train_tokens=6000, val_tokens=2000):
    """Writes d/train_000000.bin, d/val_000000.bin and d/cfg.json; returns (cfg path, cfg dict)."""
    seq = synthetic_language(train_tokens + val_tokens)
    write_shard(os.path.join(d, "train_000000.bin"), seq[:train_tokens])
    write_shard(os.path.join(d, "val_000000.bin"), seq[train_tokens:])
    cfg = {
        "name": "base", "out_dir": os.path.join(d, "runs"), "seed": 1,
        "model": {"arch": "gpt", "vocab_size": VOCAB, "layers": 2, "dim": 64, "heads": 2, "kv_heads": 2},
        "data": {"train": os.path.join(d, "train_*.bin"), "val": os.path.join(d, "val_*.bin"), "seq_len": SEQ},
        "train": {"batch_tokens": 128, "micro_batch": 4, "max_steps": 2, "log_every": 1, "val_every": 0},
    }
    path = os.path.join(d, "cfg.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path, cfg


def train_base(checks, cfg_path, name="base", *sets):
    """A 2-step run; returns its folder (the test stops when it fails: nothing else would mean much)."""
    args = ["train", cfg_path, "--quiet", "--set", f"name={name}"]
    for s in sets:
        args += ["--set", s]
    r = tern(*args)
    if not checks(r.returncode == 0, f"control: 2-step run '{name}' trains" + ("" if r.returncode == 0 else f" [{r.stderr.strip()[-300:]}]")):
        checks.finish("setup")
    with open(cfg_path) as f:
        return os.path.join(json.load(f)["out_dir"], name)


def setup(prefix, *sets):
    """The common start of a fault script: a temporary folder with the inputs and a trained run.
    Returns checks, d (folder), cfg_path, base (run folder), ckpt (its latest.h5), train / val
    (shard paths) and base_before (a snapshot of the run, for intact() at the end)."""
    checks = Checks()
    d = tempfile.mkdtemp(prefix=prefix)
    cfg_path, _ = make_inputs(d)
    base = train_base(checks, cfg_path, "base", *sets)
    return SimpleNamespace(checks=checks, d=d, cfg_path=cfg_path, base=base, ckpt=os.path.join(base, "ckpt", "latest.h5"),
                           train=os.path.join(d, "train_000000.bin"), val=os.path.join(d, "val_000000.bin"),
                           base_before=snapshot(base))


def file_size_limit(args, max_bytes, timeout=120):
    """Runs `tern ARGS` with every file it writes capped at max_bytes (EFBIG past it)."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited through exec: EFBIG, not death
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    try:
        return subprocess.run([TERN, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV,
                              preexec_fn=limit, errors="replace")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, -9, "", f"[faults: timed out after {timeout}s]")


def tmpfs_available():
    if not shutil.which("unshare"):
        return False
    r = run(["unshare", "-rm", "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs \"$d\" && echo ok"], timeout=30)
    return r.returncode == 0 and "ok" in r.stdout


def tmpfs_script(mount_dir, size_kb, script, timeout=180):
    """Runs a sh script with a size_kb tmpfs mounted on mount_dir (private to the script: it is
    gone afterwards, so the script checks what it needs and prints it)."""
    os.makedirs(mount_dir, exist_ok=True)
    body = f'mount -t tmpfs -o size={size_kb}k tmpfs "{mount_dir}" || exit 99\n' + script
    return run(["unshare", "-rm", "sh", "-c", body], timeout=timeout)


def no_temp_files(folder):
    """Paths under folder that look like a writer's leftover temporary file (NAME.tmp.PID)."""
    return [os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs if ".tmp." in f]
