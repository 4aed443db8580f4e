"""Fault injection: checkpoints (issue 10, parts 3 and 5).

Damaged checkpoint fields (negative counters, out-of-range flags, parameters stored in another
type or holding NaN / Inf, missing or misshapen tensors), silent corruption of tensor data (caught
by the per-chunk Fletcher32 checksums; `tern info --verify`), damaged files, a checkpoint write
hitting a full disk, and `--set` without a value. Each case: one error line naming the file or key,
an exit status in 1..127, no sanitizer report, the run folder byte-for-byte intact. Checkpoints
written before checksums existed must still load."""
import json
import os
import shutil

import h5py
import numpy as np
from fault_lib import TERN, expect_ok, intact, snapshot, tern
from tiny_run import file_size_limit, no_temp_files, refused, setup, tmpfs_available, tmpfs_script

S = setup("tern_faults_ckpt_", "optim.ema.enabled=true")
checks, d, cfg_path, base, ckpt, val, base_before = S.checks, S.d, S.cfg_path, S.base, S.ckpt, S.val, S.base_before

with h5py.File(ckpt, "r") as f:
    ds = f["params/blocks.0.attn.c_q.weight"]
    checks(ds.fletcher32 and ds.chunks is not None and "ema" in f and "optim" in f,
           f"control: h5py reads the checkpoint; tensors are chunked with a Fletcher32 checksum ({ds.chunks})")
PARAM = "params/blocks.1.mlp.fc.weight"


def relocated_copy(run):
    """A copy of the base run at `run` whose checkpoint's config names the copy (out_dir, name),
    so that resuming it writes there and never into the base run."""
    shutil.copytree(base, run)  # copies latest.h5 and step_2.h5 as two files (no hard link)
    p = os.path.join(run, "ckpt", "latest.h5")
    with h5py.File(p, "r+") as f:
        c = json.loads(f.attrs["config"])
        c["out_dir"], c["name"] = os.path.dirname(run), os.path.basename(run)
        f.attrs["config"] = json.dumps(c)
    return p


def damaged(name, edit=None, data=None):
    """A copy of the base run whose ckpt/latest.h5 is damaged by edit(h5py file) or replaced by
    the bytes `data`; returns (run folder, checkpoint path)."""
    run = os.path.join(d, "runs", "bad_" + "".join(c if c.isalnum() else "_" for c in name))
    p = relocated_copy(run)
    if data is not None:
        with open(p, "wb") as f:
            f.write(data)
    else:
        with h5py.File(p, "r+") as f:
            edit(f)
    return run, p


def replace(f, name, arr):
    del f[name]
    f.create_dataset(name, data=arr)


def set_value(name, index, value):
    def edit(f):
        a = f[name][...]
        a.flat[index] = value
        f[name][...] = a
    return edit


def flip_byte(p, dataset, at=100):
    """Flips one bit inside the first stored chunk of `dataset` (silent corruption on disk)."""
    with h5py.File(p, "r") as f:
        off = f[dataset].id.get_chunk_info(0).byte_offset + at
    with open(p, "r+b") as fh:
        fh.seek(off)
        b = fh.read(1)[0]
        fh.seek(off)
        fh.write(bytes([b ^ 0x10]))


def resume(run, *sets):
    args = ["train", "--resume", run, "--quiet"]
    for s in sets:
        args += ["--set", s]
    return tern(*args)


print("train state: counters and flags out of range")
state_cases = {
    "step -1": ("step", -1, "step"), "tokens -5": ("tokens", -5, "tokens"),
    "train_forwards -1": ("train_forwards", -1, "train_forwards"), "bad_steps -3": ("bad_steps", -3, "bad_steps"),
    "loader_epoch -1": ("loader_epoch", -1, "loader_epoch"), "qat_active 7": ("qat_active", 7, "qat_active"),
    "elapsed NaN": ("elapsed_seconds", float("nan"), "elapsed_seconds"),
    "elapsed -1": ("elapsed_seconds", -1.0, "elapsed_seconds"), "step 2.5 (float)": ("step", 2.5, "step"),
}
for name, (key, value, words) in state_cases.items():
    run, p = damaged(name, lambda f, k=key, v=value: f["state"].attrs.__setitem__(k, v))
    before = snapshot(run)
    refused(checks, resume(run), f"resume, {name}", names=[p, words])
    refused(checks, tern("info", p), f"info, {name}", names=[p, words])
    intact(checks, run, before, f"  resume refused ({name})")
run, p = damaged("no step", lambda f: f["state"].attrs.__delitem__("step"))
refused(checks, resume(run), "resume, /state without step", names=[p, "step"])

print("tensors: another dtype, NaN / Inf, missing, misshapen")
tensor_cases = {
    "param as float64": (lambda f: replace(f, PARAM, f[PARAM][...].astype(np.float64)), PARAM, "float64"),
    "param as int32": (lambda f: replace(f, PARAM, f[PARAM][...].astype(np.int32)), PARAM, "int32"),
    "param as float16": (lambda f: replace(f, PARAM, f[PARAM][...].astype(np.float16)), PARAM, "float16"),
    "param NaN": (set_value(PARAM, 17, np.nan), PARAM, "non-finite"),
    "param Inf": (set_value(PARAM, 3, np.inf), PARAM, "non-finite"),
    "param missing": (lambda f: f.__delitem__(PARAM), "blocks.1.mlp.fc.weight", "missing"),
    "param misshapen": (lambda f: replace(f, PARAM, f[PARAM][...].reshape(-1)), "blocks.1.mlp.fc.weight", "shape"),
}
for name, (edit, where, words) in tensor_cases.items():
    run, p = damaged(name, edit)
    refused(checks, tern("eval", "--ckpt", p, "--data", val), f"eval, {name}", names=[p, where, words])
    refused(checks, resume(run), f"resume, {name}", names=[p, where, words])
for name, (dset, words) in {"optimizer state NaN": ("optim/state_a", "optimizer state"),
                            "optimizer state as float64": ("optim/state_b", "float64"),
                            "EMA Inf": ("ema/shadow", "EMA")}.items():
    edit = (lambda f, n=dset: replace(f, n, f[n][...].astype(np.float64))) if "float64" in name else set_value(dset, 5, np.inf if "Inf" in name else np.nan)
    run, p = damaged(name, edit)
    expect_ok(checks, tern("eval", "--ckpt", p, "--data", val), f"control: eval reads the parameters only ({name})")
    refused(checks, resume(run), f"resume, {name}", names=[p, dset, words])
    if dset == "ema/shadow":
        refused(checks, tern("eval", "--ckpt", p, "--data", val, "--ema"), f"eval --ema, {name}", names=[p, dset])

print("silent corruption: one flipped bit in stored tensor data")
r = tern("info", "--verify", ckpt)
expect_ok(checks, r, f"info --verify on the good checkpoint: {r.stdout.strip()[-60:]}")
checks("ok" in r.stdout and "verified" in r.stdout, "  it says ok")
for dset in (PARAM, "optim/state_b", "ema/shadow"):
    run, p = damaged("flip " + dset, lambda f: None)
    flip_byte(p, dset)
    before = snapshot(run)
    refused(checks, tern("info", "--verify", p), f"info --verify, bit flipped in {dset}", names=[p, dset, "checksum"])
    refused(checks, resume(run), f"resume, bit flipped in {dset}", names=[p, dset, "checksum"])
    if dset == PARAM:
        refused(checks, tern("eval", "--ckpt", p, "--data", val), f"eval, bit flipped in {dset}", names=[p, dset, "checksum"])
        refused(checks, tern("export", "--ckpt", p, "-o", os.path.join(d, "x.tern")), f"export, bit flipped in {dset}",
                names=[p, dset, "checksum"])
    intact(checks, run, before, f"  nothing written ({dset})")
raw = open(ckpt, "rb").read()
sb = bytearray(raw)
sb[30] ^= 0x01  # inside the version-2 superblock, which carries its own checksum
run, p = damaged("superblock", data=bytes(sb))
refused(checks, tern("eval", "--ckpt", p, "--data", val), "eval, bit flipped in the superblock", names=[p])
refused(checks, tern("info", "--verify", p), "info --verify, bit flipped in the superblock", names=[p])

print("checkpoints written before checksums still load")


def to_old_format(src, dst):
    """dst: src as tern wrote checkpoints before checksums (contiguous datasets, 1.6 format)."""
    with h5py.File(src, "r") as fs, h5py.File(dst, "w", libver="earliest") as fd:
        def copy(name, obj):
            if isinstance(obj, h5py.Dataset):
                fd.create_dataset(name, data=obj[...])
            else:
                fd.require_group(name)
            for k, v in obj.attrs.items():
                fd[name].attrs[k] = v
        fs.visititems(copy)
        for k, v in fs.attrs.items():
            fd.attrs[k] = v


old = os.path.join(d, "old.h5")
to_old_format(ckpt, old)
r = tern("info", "--verify", old)
expect_ok(checks, r, f"info --verify, no checksums: {r.stdout.strip()[-80:]}")
checks("no checksums" in r.stdout, "  it says \"no checksums\"")
expect_ok(checks, tern("eval", "--ckpt", old, "--data", val), "eval of a checkpoint without checksums")
run, p = damaged("old format", lambda f: None)
to_old_format(p, old)
shutil.copy(old, p)
expect_ok(checks, resume(run, "train.max_steps=3"), "resume from a checkpoint without checksums")

print("damaged files")
bad_files = {
    "truncated": raw[: len(raw) // 2], "zero-length": b"", "not HDF5": b"{\"a\": 1}\n" * 40,
}
for name, data in bad_files.items():
    run, p = damaged(name, data=data)
    refused(checks, tern("eval", "--ckpt", p, "--data", val), f"eval, {name}", names=[p])
    refused(checks, resume(run), f"resume, {name}", names=[p])
attr_cases = {
    "no format attribute": (lambda f: f.attrs.__delitem__("format"), "not a tern checkpoint"),
    "version 2": (lambda f: f.attrs.__setitem__("version", 2), "version 2"),
    "config not JSON": (lambda f: f.attrs.__setitem__("config", "{not json"), "not valid JSON"),
    "config with an unknown arch": (lambda f: f.attrs.__setitem__("config", json.dumps({"model": {"arch": "nope"}})), "nope"),
}
for name, (edit, words) in attr_cases.items():
    run, p = damaged(name, edit)
    r = tern("eval", "--ckpt", p, "--data", val)
    refused(checks, r, f"eval, {name}", names=[p, words])
    checks(r.stderr.count(p) == 1 and "\ufffd" not in r.stderr, "  the message names the file once, ungarbled")

print("a checkpoint write on a full disk: one line naming the file and the cause; earlier checkpoints intact")
run = os.path.join(d, "runs", "full_disk")
relocated_copy(run)
before = snapshot(os.path.join(run, "ckpt"))
r = file_size_limit(["train", "--resume", run, "--quiet", "--set", "train.max_steps=4"], 200_000)
refused(checks, r, "resume to step 4, files capped at 200 kB (EFBIG)", names=[os.path.join(run, "ckpt", "step_4.h5"), "write failed", "File too large"])
intact(checks, os.path.join(run, "ckpt"), before, "checkpoints after the failed write")
checks(not no_temp_files(run), "no temporary file left behind")

if tmpfs_available():
    mnt = os.path.join(d, "tmpfs")
    staged = os.path.join(d, "staged", "run")
    relocated_copy(staged)
    with h5py.File(os.path.join(staged, "ckpt", "latest.h5"), "r+") as f:  # resumes inside the tmpfs
        c = json.loads(f.attrs["config"])
        c["out_dir"], c["name"] = mnt, "run"
        f.attrs["config"] = json.dumps(c)
    used_kb = sum(os.path.getsize(os.path.join(r_, f)) for r_, _, fs in os.walk(staged) for f in fs) // 1024
    script = f'''cp -r "{staged}" "{mnt}/run" && a=$(cd "{mnt}/run/ckpt" && sha256sum *)
"{TERN}" train --resume "{mnt}/run" --quiet --set train.max_steps=4; echo "rc=$?"
b=$(cd "{mnt}/run/ckpt" && sha256sum *); [ "$a" = "$b" ] && echo same; find "{mnt}" -name '*.tmp.*' | wc -l'''
    size_kb = used_kb + 300
    r = tmpfs_script(mnt, size_kb, script)
    out = r.stdout.strip().splitlines()
    rc = [int(ln[3:]) for ln in out if ln.startswith("rc=")]
    r2 = type(r)(r.args, rc[0] if rc else -1, r.stdout, r.stderr)
    refused(checks, r2, f"resume on a {size_kb} kB tmpfs (ENOSPC)", names=["step_4.h5", "write failed", "No space left on device"])
    checks("same" in out and out[-1].strip() == "0", f"  earlier checkpoints intact, no temporary file left ({out[-2:]})")
else:
    print("  SKIP: the ENOSPC case needs a tmpfs in a user namespace (unshare -rm); the EFBIG case above covers the write path")

gguf = os.path.join(os.environ.get("TERN_DATA", "../shared/data"), "teacher", "stories260K-f32.gguf")
if os.path.exists(gguf):
    out_dir = os.path.join(d, "imported")
    expect_ok(checks, tern("import", gguf, "-o", out_dir), "control: tern import")
    before = snapshot(out_dir)
    r = file_size_limit(["import", gguf, "-o", out_dir], 300_000)
    refused(checks, r, "tern import, files capped at 300 kB (EFBIG)", names=[out_dir, "write failed"])
    intact(checks, out_dir, before, "the earlier import")
    checks(not no_temp_files(out_dir), "no temporary file left behind")
else:
    print(f"  SKIP: tern import on a full disk needs {gguf}")

print("command line: --set without a value is one usage line, exit 2")
for args, what in ((["train", cfg_path, "--set"], "--set"), (["train", cfg_path, "--set", "model.layers"], "model.layers"),
                   (["eval", "--data", val, "--ckpt"], "--ckpt"), (["train", cfg_path, "--threads"], "--threads")):
    r = tern(*args)
    refused(checks, r, "tern " + " ".join("CONFIG" if a == cfg_path else "VAL" if a == val else a for a in args), names=[what])
    checks(r.returncode == 2, f"  exit 2 (got {r.returncode})")

intact(checks, base, base_before, "the trained run")
shutil.rmtree(d, ignore_errors=True)
checks.finish("faults_ckpt")
