"""Fault injection: the Hybrid-GRU backbone (issue 12).

Configs: a bad GRU cell name, keys out of their ranges (gru_tbptt, gru_state_eps, gru_keep_bias,
mlgru_xavier_gain), an unknown MLGRU scan, a letter the hgru preset does not have, and an
embedding narrower than dim where the stack cannot widen (a tied head, resid_mix, BigramHash, a
first layer that is not a GRU / MLGRU): each one error line naming the key, nothing written.
Artifacts: a trained hgru_engine-shaped model exported, then its GRU hyper-parameters damaged
(unknown cell, embedding width, a NaN eps) and the file truncated: tern-run refuses each with one
line naming the artifact; the run folder stays intact throughout."""
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zlib

from fault_lib import Checks, expect_error, expect_ok, intact, snapshot, synthetic_language, tern, tern_run, write_shard

PREAMBLE = 32  # export/format.h TERN_PREAMBLE_SIZE
checks = Checks()
d = tempfile.mkdtemp(prefix="tern_faults_hgru_")
write_shard(os.path.join(d, "train_000000.bin"), synthetic_language(20000))
write_shard(os.path.join(d, "val_000000.bin"), synthetic_language(4000, seed=1))
runs = os.path.join(d, "runs")
cfg = {"name": "engine", "out_dir": runs, "seed": 1,
       "model": {"arch": "hgru_engine", "vocab_size": 64, "embed_dim": 16, "dim": 32, "seq_len": 32},
       "data": {"train": os.path.join(d, "train_*.bin"), "val": os.path.join(d, "val_*.bin"), "seq_len": 32},
       "quant": {"weights": "ternary", "group": 0, "ternary_center": True, "min_numel": 0},
       "train": {"batch_tokens": 64, "micro_batch": 2, "max_steps": 2, "log_every": 1}}
cfg_path = os.path.join(d, "engine.json")
with open(cfg_path, "w") as f:
    json.dump(cfg, f)

HG = '{"arch":"hgru","vocab_size":64,"dim":32,"layers":2,"seq_len":32'
CASES = [
    ("unknown GRU cell", [f'model={HG},"gru_variant":"lstm"}}'], "model.gru_variant must be torch or engine"),
    ("truncation length past its range", [f'model={HG},"gru_tbptt":-2}}'], "model.gru_tbptt must be in [0, "),
    ("state eps > 1", [f'model={HG},"gru_state_eps":5}}'], "model.gru_state_eps must be in [0, 1]"),
    ("keep bias NaN", ["model.gru_keep_bias=NaN"], "model.gru_keep_bias must be a number"),
    ("MLGRU gain past its range", [f'model={HG},"mlgru_xavier_gain":1e9}}'], "model.mlgru_xavier_gain must be in [0, 100]"),
    ("unknown MLGRU scan", [f'model={HG},"mlgru_scan":"magic"}}'], "model.mlgru_scan must be sequential"),
    ("a letter hgru does not have", ['model={"arch":"hgru","vocab_size":64,"dim":32,"layout":"GAG","layers":0}'],
     "model.layout of hgru may only hold"),
    ("narrow embedding, tied head", [f'model={HG},"embed_dim":8}}'], "model.tie_embeddings must be false"),
    ("narrow embedding, resid_mix", [f'model={HG},"embed_dim":8,"tie_embeddings":false,"resid_mix":true}}'], "model.resid_mix must be false"),
    ("narrow embedding under attention", ['model={"arch":"gpt","embed_dim":8,"tie_embeddings":false}'], "first layer's token mixer must be one that widens"),
    ("centred quantizer not a bool", ["quant.ternary_center=3"], "quant.ternary_center"),
]
for what, sets, name in CASES:
    args = ["train", cfg_path, "--dry-run"]
    for s in sets:
        args += ["--set", s]
    expect_error(checks, tern(*args), what, names=[name], allow_lines=1)
checks(not os.path.exists(runs), "config errors: no run folder written")

# ---- a real artifact, then damaged copies
expect_ok(checks, tern("train", cfg_path, "--quiet"), "train a tiny hgru_engine (embed 16 -> state 32), ternary centred")
ckpt = os.path.join(runs, "engine", "ckpt", "latest.h5")
art = os.path.join(d, "engine.tern")
expect_ok(checks, tern("export", "--ckpt", ckpt, "-o", art), "export")
before = snapshot(runs)
expect_ok(checks, tern_run("eval", art, "--data", os.path.join(d, "val_*.bin")), "the artifact evaluates")


def damaged(name, edit):
    """A copy of the artifact with edit(container) applied to its decompressed container (the
    preamble is a zstd skippable frame, so `zstd -d` yields the container), the container's CRC-32
    recomputed so that the damage is judged by the key checks, recompressed behind the same
    preamble."""
    raw, out = os.path.join(d, "raw.bin"), os.path.join(d, name)
    subprocess.run(["zstd", "-d", "-q", "-f", art, "-o", raw], check=True)
    with open(raw, "rb") as f:
        c = edit(bytearray(f.read()))
    c[-4:] = struct.pack("<I", zlib.crc32(bytes(c[:-4])) & 0xFFFFFFFF)
    with open(raw, "wb") as f:
        f.write(c)
    subprocess.run(["zstd", "-q", "-f", "-3", raw, "-o", raw + ".zst"], check=True)
    with open(art, "rb") as f, open(raw + ".zst", "rb") as z, open(out, "wb") as o:
        o.write(f.read(PREAMBLE) + z.read())
    return out


def replace(c, after, old, new):
    i = c.find(old, c.find(after))
    assert i >= 0, old
    c[i:i + len(old)] = new
    return c


def set_u32_after(c, key, v):
    i = c.find(key)
    assert i >= 0, key
    c[i + len(key) + 4:i + len(key) + 8] = struct.pack("<I", v)  # the key, its u32 type, then the value
    return c


for what, edit, names in [
    ("unknown GRU cell", lambda c: replace(c, b"gru.variant", b"engine", b"engind"), ['gru.variant "engind"']),
    ("embedding width", lambda c: set_u32_after(c, b"stack.embed_dim", 12), ["blocks.0.gru.w_z", "the hyper-parameters need"]),
    ("state eps NaN", lambda c: set_u32_after(c, b"gru.state_eps", 0x7FC00000), ["gru.state_eps is not finite"]),
]:
    bad = damaged("bad.tern", edit)
    expect_error(checks, tern_run("eval", bad, "--data", os.path.join(d, "val_*.bin")), f"artifact: {what}", names=["bad.tern", *names],
                 allow_lines=1)
with open(art, "rb") as f:
    blob = f.read()
short = os.path.join(d, "short.tern")
with open(short, "wb") as f:
    f.write(blob[:len(blob) // 2])
expect_error(checks, tern_run("eval", short, "--data", os.path.join(d, "val_*.bin")), "truncated artifact", names=["short.tern"],
             allow_lines=1)
intact(checks, runs, before, "artifact faults")
shutil.rmtree(d, ignore_errors=True)
checks.finish("faults_hgru")
