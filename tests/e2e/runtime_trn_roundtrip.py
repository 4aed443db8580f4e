"""TRN hybrid export -> runtime round trip through the command lines: a tiny trn_hybrid (layout TAT:
TRN, attention, TRN with a U-Net skip; token shift; BigramHash) trained a few steps with int5 QAT
on from step 0 on synthetic text (own BPE tokenizer, shards by `tern prepare`):

  * int5 (codes stored one per byte, the TRN default), fp16 passthrough: tern-run eval's val_bpb
    equals `tern eval --quantized` of the same checkpoint within 1e-4, over the same windows and
    bytes; so does the fp32-passthrough export (the checkpoint's plan set to fp32 so both sides
    evaluate the same numbers);
  * evaluation with 1 and 2 threads gives the same sums (every window starts from a fresh state);
  * generation with a seed is deterministic, another seed gives other text;
  * tern-run info and bench work on TRN artifacts.
"""
import json
import os
import random
import shutil
import sys
import tempfile
from e2e_common import Checks, must_run

BIN = os.environ.get("TERN_BIN", "build/bin")
TERN, RUN = os.path.join(BIN, "tern"), os.path.join(BIN, "tern-run")
check = Checks()
# In a sanitizer build (-DTERN_SANITIZE=address,...), `tern train` leaks its resolved optimizer
# section (optim/optimizer.c, reported); leak checks stay on for export, eval and the runtime.
TRAIN_ENV = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")


must = must_run


d = tempfile.mkdtemp(prefix="tern_rt_trn_e2e_")
# text from a small grammar: subjects, verbs, objects and a few fixed phrases, so a few training
# steps already learn something and bigrams repeat
rng = random.Random(11)
subj = "the oscillator|a phase|every state|the decay|one gate|this layer|the readout|a window".split("|")
verb = "rotates|decays|resonates with|gates|follows|erases|mixes|carries".split("|")
obj = "the signal|its memory|the next token|a bigram|the residual|each channel|the phase".split("|")


def doc():
    out = []
    for _ in range(rng.randint(3, 7)):
        s = f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)}"
        if rng.random() < 0.3:
            s += f" while {rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)}"
        out.append(s.capitalize() + ".")
    return " ".join(out)


os.makedirs(os.path.join(d, "txt"))
corpus = os.path.join(d, "txt", "corpus.txt")
with open(corpus, "w") as f:
    f.write("\n\n".join(doc() for _ in range(800)))
tok = os.path.join(d, "tok.bpe")
must([TERN, "tokenizer", "train", corpus, "--vocab", "320", "-o", tok], "tokenizer")
must([TERN, "prepare", corpus, "--tokenizer", tok, "-o", os.path.join(d, "shards"), "--name", "syn", "--split", "blank",
      "--val-docs", "60"], "prepare")
val = os.path.join(d, "shards", "syn_val_*.bin")

cfg = {
    "name": "trn", "out_dir": os.path.join(d, "runs"), "seed": 3,
    "model": {"arch": "trn_hybrid", "vocab_size": 320, "layout": "TAT", "dim": 128, "heads": 2, "kv_heads": 1, "seq_len": 64,
              "oscillators": 16, "bigram_rows": 256, "bigram_dim": 32, "res_warmup": 0},
    "data": {"train": os.path.join(d, "shards", "syn_train_*.bin"), "val": val, "tokenizer": tok, "seq_len": 32},
    "quant": {"qat": True, "start_step": 0, "min_numel": 1000, "weights": "int5"},
    "train": {"batch_tokens": 512, "micro_batch": 8, "max_steps": 8, "log_every": 4, "val_every": 0, "eval_at_end": False},
}
with open(os.path.join(d, "trn.json"), "w") as f:
    json.dump(cfg, f)
must([TERN, "train", os.path.join(d, "trn.json"), "--quiet", "--json", "--threads", "1"], "train", TRAIN_ENV)
ckpt = os.path.join(d, "runs", "trn", "ckpt", "latest.h5")


def pair(ck, art, *export_args):
    rep = json.loads(must([TERN, "export", "--ckpt", ck, "-o", art, "--json", *export_args], f"export {art}").stdout)
    ref = json.loads(must([TERN, "eval", "--ckpt", ck, "--data", val, "--quantized", "--json", "--threads", "1"], "tern eval").stdout)
    got = json.loads(must([RUN, "eval", art, "--data", val, "--json", "--threads", "1"], "tern-run eval").stdout)
    return rep, ref, got


print("int5 (one code per byte), fp16 passthrough, QAT from step 0")
art16 = os.path.join(d, "trn16.tern")
rep, ref, got = pair(ckpt, art16)
kinds = {t["name"]: t["dtype"] for t in rep["tensors"]}
mats = [n for n in kinds if n.endswith(".weight")]
check(all(kinds[n] == "int5/bytes" for n in mats), f"every weight matrix stored int5, one code per byte ({len(mats)})")
check(kinds["blocks.0.resonance.proj.omega_base"] == "fp16" and kinds["blocks.0.resid_mix"] == "fp32",
      "vectors fp16, control tensors fp32")
check(os.path.getsize(art16) == rep["bytes"], f"artifact {rep['bytes']} bytes, as reported")
check(got["tokens"] == ref["tokens"] and got["bytes"] == ref["bytes"] and got["windows"] > 1,
      f"same {got['windows']} windows and byte count: {got['tokens']:.0f} tokens, {got['bytes']:.0f} bytes")
diff = abs(got["val_bpb"] - ref["val_bpb"])
check(diff < 1e-4, f"val_bpb tern-run {got['val_bpb']:.6f} vs tern eval --quantized {ref['val_bpb']:.6f}: |diff| {diff:.2e} < 1e-4")
got2 = json.loads(must([RUN, "eval", art16, "--data", val, "--json", "--threads", "2"], "tern-run eval 2 threads").stdout)
check(got2["val_loss"] == got["val_loss"], f"2 threads: the same val_loss {got2['val_loss']!r}")

print("int5, fp32 passthrough")
import h5py  # noqa: E402  (only this part needs it)
ck32 = os.path.join(d, "fp32.h5")
shutil.copy(ckpt, ck32)
with h5py.File(ck32, "r+") as f:
    c = json.loads(f.attrs["config"])
    c.setdefault("export", {})["passthrough"] = "fp32"
    f.attrs["config"] = json.dumps(c)
art32 = os.path.join(d, "trn32.tern")
rep32, ref32, got32 = pair(ck32, art32)
kinds32 = {t["name"]: t["dtype"] for t in rep32["tensors"]}
check(kinds32["blocks.0.resonance.proj.omega_base"] == "fp32" and kinds32["bigram.scale"] == "fp32", "vectors fp32")
diff = abs(got32["val_bpb"] - ref32["val_bpb"])
check(diff < 1e-4, f"val_bpb tern-run {got32['val_bpb']:.6f} vs tern eval --quantized {ref32['val_bpb']:.6f}: |diff| {diff:.2e} < 1e-4")

print("generation, info, bench")
gen = lambda seed: json.loads(must([RUN, "generate", art16, "--prompt", "The oscillator", "-n", "24", "--seed", str(seed), "--temp",
                                    "1.0", "--json"], "generate").stdout)
g1, g2, g3 = gen(42), gen(42), gen(43)
check(g1["ids"] == g2["ids"] and g1["text"] == g2["text"] and len(g1["ids"]) > 0, f"seed 42 twice: same {len(g1['ids'])} tokens: {g1['text'][:60]!r}")
check(g1["ids"] != g3["ids"], "seed 43: different tokens")
info = json.loads(must([RUN, "info", art16, "--json"], "info").stdout)
check(info["arch"] == "trn_hybrid" and info["layers"] == 3 and info["dim"] == 128 and info["eval_seq_len"] == 32 and info["tokenizer"],
      f"tern-run info: {info['arch']} {info['layers']} x {info['dim']}, {info['params']} params")
b = json.loads(must([RUN, "bench", art16, "--prompt", "32", "--gen", "16", "--repeat", "1", "--threads", "1", "--json"], "bench").stdout)
check(b["prefill_tok_per_s"] > 0 and b["decode_tok_per_s"] > 0,
      f"tern-run bench: prefill {b['prefill_tok_per_s']:.0f} tok/s, decode {b['decode_tok_per_s']:.0f} tok/s (1 thread)")

print("e2e_runtime_trn_roundtrip:", "FAILED" if check.failures else "all checks passed")
if not check.failures:
    shutil.rmtree(d, ignore_errors=True)  # a failure keeps its files for inspection
sys.exit(1 if check.failures else 0)
