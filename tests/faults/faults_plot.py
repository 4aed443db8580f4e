"""Fault injection, loss plots (`tern plot`, RUN_DIR/loss.png of `tern train`).

`tern train` draws RUN_DIR/loss.png at the end (PNG magic checked), `train.plot=false` skips it,
a resume is recorded as an event row, and a plot that cannot be written is one warning line,
never a failed run. `tern plot` writes PNG and SVG for several runs; a missing or corrupt
metrics file, an unwritable output path, an unknown extension and bad options are each one error
line naming the file or option, with status in 1..127 and the picture already there intact.

Tiny runs (tiny_run.py's 2 x 64 GPT on synthetic shards, one thread): the script takes seconds."""
import json
import os
import shutil
import tempfile

from fault_lib import Checks, expect_error, expect_ok, intact, snapshot, tern
from tiny_run import make_inputs

check = Checks()
d = tempfile.mkdtemp(prefix="tern_faults_plot_")
cfg_path, cfg = make_inputs(d)
runs = cfg["out_dir"]
cfg["name"] = "a"
cfg["threads"] = 1
cfg["train"].update(max_steps=6, val_every=2, ckpt_every=2, val_tokens=128)
with open(cfg_path, "w") as f:
    json.dump(cfg, f)


def train(*args):
    return tern("train", cfg_path, "--quiet", *args)


def rd(name, *rest):
    return os.path.join(runs, name, *rest)


def head(path, n=8):
    with open(path, "rb") as f:
        return f.read(n)


def one_line(r, what, names):
    return expect_error(check, r, what, names=names, allow_lines=1)


print("tern train draws loss.png")
expect_ok(check, train("--stop-after", "4"), "a 6-step run stopped after 4")
check(head(rd("a", "loss.png")) == b"\x89PNG\r\n\x1a\n", "RUN_DIR/loss.png is a PNG")
expect_ok(check, tern("train", "--resume", rd("a"), "--quiet"), "resumed to step 6")
with open(rd("a", "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
resumes = [o for o in rows if o.get("event") == "resume"]
check(len(resumes) == 1 and resumes[0]["step"] == 4 and resumes[0]["tokens"] == 4 * cfg["train"]["batch_tokens"],
      f"the resume is an event row with its step and tokens: {resumes}")
expect_ok(check, train("--set", "name=off", "--set", "train.plot=false"), "train.plot=false")
check(not os.path.exists(rd("off", "loss.png")), "train.plot=false: no loss.png")
os.makedirs(rd("blocked", "loss.png"))  # a folder where the picture should go: the write fails
r = train("--set", "name=blocked", "--overwrite")
expect_ok(check, r, "a plot that cannot be written does not fail the run")
warn = [ln for ln in r.stderr.splitlines() if "warning" in ln]
check(len(warn) == 1 and "loss.png" in warn[0], f"one warning line naming loss.png: {warn}")

print("tern plot")
out_png, out_svg = os.path.join(d, "ab.png"), os.path.join(d, "ab.svg")
expect_ok(check, tern("plot", rd("a"), rd("off"), "-o", out_png), "two runs to PNG")
check(head(out_png) == b"\x89PNG\r\n\x1a\n", "a PNG")
expect_ok(check, tern("plot", rd("a"), rd("off"), "-o", out_svg, "--time", "--smooth", "0.5"), "two runs to SVG against the clock")
check(head(out_svg, 5) in (b"<?xml", b"<svg "), f"an SVG document: {head(out_svg, 5)}")
expect_ok(check, tern("plot", rd("off", "metrics.jsonl"), "-o", os.path.join(d, "file.png")), "a metrics file given directly")

print("bad input: one line, nothing overwritten")
shutil.copytree(rd("off"), rd("bad"))
with open(rd("bad", "metrics.jsonl"), "ab") as f:
    f.write(b"\x00\x01\xff not json\n")
os.makedirs(rd("noloss"))
with open(rd("noloss", "metrics.jsonl"), "w") as f:
    f.write('{"step": 1, "event": "checkpoint"}\n')
before = snapshot(d)
one_line(tern("plot", os.path.join(d, "nope"), "-o", out_png), "missing run folder", names=("nope: no such run folder",))
one_line(tern("plot", rd("bad"), "-o", out_png), "corrupt metrics row", names=("bad/metrics.jsonl:",))
one_line(tern("plot", rd("noloss"), "-o", out_png), "metrics without train_loss rows", names=("noloss/metrics.jsonl", "train_loss"))
one_line(tern("plot", rd("a"), "-o", os.path.join(d, "no", "such", "dir", "x.png")), "unwritable output path",
         names=("no/such/dir/x.png",))
one_line(tern("plot", rd("a"), "-o", os.path.join(d, "ab.jpg")), "unknown extension", names=("ab.jpg", ".png or .svg"))
one_line(tern("plot", rd("a"), rd("off")), "two runs without -o", names=("-o",))
one_line(tern("plot", rd("a"), "--smooth", "1.5", "-o", out_png), "--smooth out of range", names=("--smooth",))
one_line(tern("plot", rd("a"), "--bogus"), "unknown option", names=("--bogus",))
expect_error(check, tern("plot"), "no run given: the usage text, status 2")
intact(check, d, before, "after the refused plots")
shutil.rmtree(d, ignore_errors=True)
check.finish("faults_plot")
