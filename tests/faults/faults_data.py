"""Fault injection: token shards, evaluation data and teacher-logit files (issue 10, parts 3 and 5).

Every damaged shard (bin and .h5; truncated, empty, wrong magic / version / count, token >= vocab,
a folder) fed to `tern train` (as training and as validation data), `tern eval` and `tern-run
eval`; evaluation data shorter than one window; teacher-logit files with NaN / Inf values, ids
outside the vocabulary, bad k / temperature / shapes; `tern logits` hitting a full disk. Each case
must end in one error line naming the file, an exit status in 1..127, no sanitizer report, and the
earlier run folder / output file byte-for-byte intact."""
import os
import shutil

import h5py
import numpy as np
from fault_lib import TERN, expect_ok, intact, snapshot, tern, tern_run, write_shard
from tiny_run import VOCAB, file_size_limit, no_temp_files, refused, setup, tmpfs_available, tmpfs_script

S = setup("tern_faults_data_")
checks, d, cfg_path, base, ckpt, train_shard, base_before = S.checks, S.d, S.cfg_path, S.base, S.ckpt, S.train, S.base_before


# ---------------------------------------------------------------- damaged shards
def put_files(bad, files, folder_name):
    """Writes {file name: bytes} into bad/ plus an empty folder named like a shard; returns
    [(case name, path)]."""
    out = []
    for name, data in files.items():
        p = os.path.join(bad, name)
        with open(p, "wb") as f:
            f.write(data)
        out.append((name, p))
    os.makedirs(os.path.join(bad, folder_name))
    return out + [(f"a folder {folder_name}", os.path.join(bad, folder_name))]


def bin_cases(bad):
    good = open(train_shard, "rb").read()
    hdr = np.frombuffer(good[:1024], dtype="<i4").copy()
    toks = np.frombuffer(good[1024:], dtype="<u2").copy()

    def with_header(**kw):
        h = hdr.copy()
        for i, k in enumerate(("magic", "version", "count")):
            if k in kw:
                h[i] = kw[k]
        return h.tobytes() + good[1024:]

    def with_token(pos, value):
        t = toks.copy()
        t[pos] = value
        return good[:1024] + t.tobytes()

    cases = {
        "cut_in_header": good[:500], "cut_mid_token": good[:1024 + 201], "cut_between_tokens": good[:1024 + 200],
        "zero_length": b"", "header_only": good[:1024], "wrong_magic": with_header(magic=20240521),
        "wrong_version": with_header(version=2), "negative_count": with_header(count=-1),
        "count_too_large": with_header(count=len(toks) + 10), "trailing_bytes": good + b"\0\0",
        "token_eq_vocab": with_token(100, VOCAB), "token_65535": with_token(len(toks) - 1, 65535),
        "text_file": b"this is not a token shard\n" * 64,
    }
    return put_files(bad, {f"{name}.bin": data for name, data in cases.items()}, "folder_000000.bin")


def h5_cases(bad):
    toks = np.frombuffer(open(train_shard, "rb").read()[1024:], dtype="<u2").astype(np.uint32)
    specs = {
        "no_tokens_dataset": ("x", toks), "float_tokens": ("tokens", toks.astype(np.float32)),
        "signed_tokens": ("tokens", toks.astype(np.int32)), "uint64_tokens": ("tokens", toks.astype(np.uint64)),
        "tokens_2d": ("tokens", toks[:4000].reshape(2, 2000)),
        "token_ge_vocab": ("tokens", np.where(np.arange(len(toks)) == 50, VOCAB + 3, toks).astype(np.uint32)),
    }
    out = []
    for name, (ds, arr) in specs.items():
        p = os.path.join(bad, f"{name}.h5")
        with h5py.File(p, "w") as f:
            f[ds] = arr
        out.append((f"{name}.h5", p))
    good = os.path.join(bad, "good.h5")
    with h5py.File(good, "w") as f:
        f["tokens"] = toks
    raw = open(good, "rb").read()
    return out + put_files(bad, {"truncated.h5": raw[: len(raw) // 2], "text.h5": b"hello\n" * 100, "empty.h5": b""}, "folder.h5"), good


bad = os.path.join(d, "bad")
os.makedirs(bad)
shards = bin_cases(bad)
h5s, good_h5 = h5_cases(bad)
r = tern("eval", "--ckpt", ckpt, "--data", good_h5)
expect_ok(checks, r, "control: tern eval reads a good .h5 token shard")
r = tern("export", "--ckpt", ckpt, "-o", os.path.join(d, "m.tern"))
have_artifact = expect_ok(checks, r, "control: tern export for the tern-run cases")

print("damaged shards: tern train (training and validation data), tern eval, tern-run eval")
for name, p in shards + h5s:
    r = tern("train", cfg_path, "--quiet", "--set", "name=bad", "--set", f"data.train={p}")
    refused(checks, r, f"train, data.train = {name}", names=[p])
    r = tern("train", cfg_path, "--quiet", "--set", "name=bad", "--set", f"data.val={p}")
    refused(checks, r, f"train, data.val = {name}", names=[p])
    r = tern("eval", "--ckpt", ckpt, "--data", p)
    refused(checks, r, f"eval {name}", names=[p])
    if have_artifact:
        r = tern_run("eval", os.path.join(d, "m.tern"), "--data", p)
        refused(checks, r, f"tern-run eval {name}", names=[p])
checks(not os.path.exists(os.path.join(d, "runs", "bad")), "no run folder left by the refused shards")
r = tern("eval", "--ckpt", ckpt, "--data", os.path.join(d, "nothing_*.bin"))
refused(checks, r, "eval: a glob matching nothing", names=["nothing_*.bin"])

print("evaluation data shorter than one window is an error, not val_loss nan")
short = os.path.join(d, "short.bin")
one = os.path.join(d, "one.bin")
write_shard(short, [1, 5, 9, 2, 7, 3, 4, 8, 6, 10])
write_shard(one, [1])
r = tern("eval", "--ckpt", ckpt, "--data", short)
refused(checks, r, "eval: 10 tokens, 32-token windows", names=[short])
r = tern("eval", "--ckpt", ckpt, "--data", one, "--sliding", "16")
refused(checks, r, "eval --sliding: 1 token", names=[one])
r = tern("eval", "--ckpt", ckpt, "--data", short, "--sliding", "16")
expect_ok(checks, r, "control: eval --sliding scores a stream shorter than one window")
r = tern("train", cfg_path, "--quiet", "--set", "name=short_val", "--set", f"data.val={short}")
refused(checks, r, "train: validation split shorter than one window", names=[short])
if have_artifact:
    r = tern_run("eval", os.path.join(d, "m.tern"), "--data", short)
    refused(checks, r, "tern-run eval: 10 tokens, 32-token windows", names=[short])


# ---------------------------------------------------------------- teacher-logit files
print("teacher-logit files: damaged values, attributes and shapes")
tdir = os.path.join(d, "teacher")
good_t = os.path.join(tdir, "train_000000.h5")
r = tern("logits", "--ckpt", ckpt, "--data", train_shard, "-o", good_t, "--k", "4")
expect_ok(checks, r, "control: tern logits writes a teacher file")
r = tern("train", cfg_path, "--quiet", "--set", "name=distill_ok", "--set", f"distill.teacher={good_t}")
expect_ok(checks, r, "control: training distils from the good teacher file")


def damaged_teacher(name, edit):
    folder = os.path.join(d, "teachers_bad", name)
    os.makedirs(folder)
    p = os.path.join(folder, "train_000000.h5")
    shutil.copy(good_t, p)
    with h5py.File(p, "r+") as f:
        edit(f)
    return p


def replace(f, name, arr):
    del f[name]
    f[name] = arr


teacher_cases = {
    "NaN value": (lambda f: f["values"].__setitem__((7, 1), np.nan), "must be finite"),
    "Inf value": (lambda f: f["values"].__setitem__((3, 0), np.inf), "must be finite"),
    "NaN lse": (lambda f: f["lse"].__setitem__(11, np.nan), "must be finite"),
    "-Inf lse": (lambda f: f["lse"].__setitem__(0, -np.inf), "must be finite"),
    "value above lse": (lambda f: f["values"].__setitem__((5, 0), f["lse"][5] + 3.0), "exceeds"),
    "id >= vocab": (lambda f: f["indices"].__setitem__((2, 2), VOCAB), "outside the vocabulary"),
    "negative id": (lambda f: f["indices"].__setitem__((9, 0), -1), "outside the vocabulary"),
    "k = 0": (lambda f: f.attrs.__setitem__("k", 0), "k 0"),
    "k > vocab": (lambda f: f.attrs.__setitem__("k", VOCAB + 1), "k"),
    "k != columns": (lambda f: f.attrs.__setitem__("k", 3), "[N, 3]"),
    "temperature 0": (lambda f: f.attrs.__setitem__("temperature", 0.0), "temperature"),
    "temperature NaN": (lambda f: f.attrs.__setitem__("temperature", np.nan), "temperature"),
    "temperature -1": (lambda f: f.attrs.__setitem__("temperature", -1.0), "temperature"),
    "negative offset": (lambda f: f.attrs.__setitem__("offset", -5), "offset"),
    "vocab mismatch": (lambda f: f.attrs.__setitem__("vocab_size", VOCAB * 2), "vocabulary"),
    "k as float": (lambda f: f.attrs.__setitem__("k", 4.0), "not an integer"),
    "lse too short": (lambda f: replace(f, "lse", f["lse"][:-5]), "/lse"),
    "values rows != indices rows": (lambda f: replace(f, "values", f["values"][:-5]), "/values"),
    "float indices": (lambda f: replace(f, "indices", f["indices"][:].astype(np.float32)), "integers"),
    "no format attribute": (lambda f: f.attrs.__delitem__("format"), "not a tern teacher-logit file"),
    "version 2": (lambda f: f.attrs.__setitem__("version", 2), "not a tern teacher-logit file"),
}
for name, (edit, words) in teacher_cases.items():
    p = damaged_teacher(name.replace(" ", "_").replace(">", "gt").replace("=", "eq").replace("!", "n"), edit)
    r = tern("train", cfg_path, "--quiet", "--set", "name=distill_bad", "--set", f"distill.teacher={p}")
    refused(checks, r, f"teacher {name}", names=[p, words])
for name, data in {"truncated": open(good_t, "rb").read()[:3000], "not HDF5": b"garbage\n" * 50, "empty": b""}.items():
    p = os.path.join(d, "teachers_bad", name.replace(" ", "_"), "train_000000.h5")
    os.makedirs(os.path.dirname(p))
    with open(p, "wb") as f:
        f.write(data)
    r = tern("train", cfg_path, "--quiet", "--set", "name=distill_bad", "--set", f"distill.teacher={p}")
    refused(checks, r, f"teacher file {name}", names=[p])
checks(not os.path.exists(os.path.join(d, "runs", "distill_bad")), "no run folder left by the refused teacher files")


# ---------------------------------------------------------------- full disk
print("tern logits on a full disk: one line naming the file and the cause; the earlier file intact")
out_dir = os.path.join(d, "logits_out")
os.makedirs(out_dir)
target = os.path.join(out_dir, "train_000000.h5")
shutil.copy(good_t, target)
before = snapshot(out_dir)
r = file_size_limit(["logits", "--ckpt", ckpt, "--data", train_shard, "-o", target, "--k", "4", "--dtype", "f32"], 20000)
refused(checks, r, "tern logits, files capped at 20 kB (EFBIG)", names=[target, "write failed", "File too large"])
intact(checks, out_dir, before, "tern logits on a full disk")
checks(not no_temp_files(out_dir), "no temporary file left behind")

if tmpfs_available():
    mnt = os.path.join(d, "tmpfs")
    script = f'''cp "{good_t}" "{mnt}/t.h5"; a=$(sha256sum "{mnt}/t.h5")
"{TERN}" logits --ckpt "{ckpt}" --data "{train_shard}" -o "{mnt}/t.h5" --k 4 --dtype f32; echo "rc=$?"
b=$(sha256sum "{mnt}/t.h5"); [ "$a" = "$b" ] && echo same; ls "{mnt}" | grep -c tmp'''
    size_kb = (os.path.getsize(good_t) + 1023) // 1024 + 40
    r = tmpfs_script(mnt, size_kb, script)
    tail = r.stdout.strip().splitlines()
    rc_line = [ln for ln in tail if ln.startswith("rc=")]
    code = int(rc_line[0][3:]) if rc_line else -1
    r2 = type(r)(r.args, code, r.stdout, r.stderr)
    refused(checks, r2, f"tern logits on a {size_kb} kB tmpfs (ENOSPC)", names=["t.h5", "write failed", "No space left on device"])
    checks("same" in tail and tail[-1] == "0", f"  the earlier file intact, no temporary file left ({tail[-2:]})")
else:
    print("  SKIP: the ENOSPC case needs a tmpfs in a user namespace (unshare -rm); the EFBIG case above covers the write path")

intact(checks, base, base_before, "the trained run")
shutil.rmtree(d, ignore_errors=True)
checks.finish("faults_data")
