"""Fault injection, `tern export --format gguf`: an architecture llama.cpp does not run, an unknown
--quant or --format, tq2_0 / tq1_0 without a ternary plan or with groups that straddle ggml's
256-weight blocks, a missing or non-SentencePiece tokenizer, a llama model with a part llama.cpp
lacks: each is one clear line and a non-zero exit, and an existing output file is left as it was.

The models: a 1-layer GPT and 1-layer llama-shaped models (dim 256) trained 1 step (seconds)."""
import json
import os
import shutil
import tempfile

from fault_lib import Checks, expect_error, expect_ok, synthetic_language, tern, write_shard

check = Checks()
d = tempfile.mkdtemp(prefix="tern_faults_gguf_")
DATA = os.environ.get("TERN_DATA", "../shared/data")
SP = os.path.join(DATA, "fineweb", "fineweb_1024_bpe.model")
write_shard(os.path.join(d, "syn_train_000000.bin"), synthetic_language(4000))


def train(name, model, quant=None, tokenizer="byte"):
    cfg = {"name": name, "out_dir": os.path.join(d, "runs"), "seed": 1, "threads": 1, "model": model,
           "data": {"train": os.path.join(d, "syn_train_*.bin"), "tokenizer": tokenizer, "seq_len": 8},
           "train": {"batch_tokens": 16, "micro_batch": 2, "max_steps": 1, "log_every": 1, "eval_at_end": False}}
    if quant:
        cfg["quant"] = quant
    path = os.path.join(d, name + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    expect_ok(check, tern("train", path, "--quiet"), f"train {name}")
    return os.path.join(d, "runs", name, "ckpt", "latest.h5")


LLAMA = {"arch": "llama", "vocab_size": 1024, "layers": 1, "dim": 256, "heads": 4, "kv_heads": 2, "hidden": 256, "seq_len": 16}
gpt = train("gpt", {"arch": "gpt", "vocab_size": 260, "layers": 1, "dim": 16, "heads": 2, "kv_heads": 1})
out = os.path.join(d, "out.gguf")
with open(out, "wb") as f:
    f.write(b"keep me")


def gguf(*args):
    return tern("export", "--format", "gguf", "-o", out, *args)


expect_error(check, gguf("--ckpt", gpt), "a GPT checkpoint is refused, naming what can be exported",
             names=("architecture \"gpt\"", "llama preset"), allow_lines=1)
expect_error(check, gguf("--ckpt", gpt, "--quant", "q4_0"), "an unknown --quant is refused, listing the types",
             names=("q4_0", "tq2_0"), allow_lines=1)
expect_error(check, tern("export", "--format", "onnx", "--ckpt", gpt, "-o", out), "an unknown --format is refused",
             names=("onnx", "gguf"), allow_lines=1)
expect_error(check, gguf("--ckpt", gpt, "--group", "4"), "a tern-format option is refused under --format gguf",
             names=("--group",), allow_lines=1)

if not os.path.exists(SP):
    print(f"SKIP: {SP} not found (set TERN_DATA): the llama cases need a SentencePiece tokenizer")
else:
    plain = train("llama", LLAMA, tokenizer=SP)
    expect_error(check, gguf("--ckpt", plain, "--quant", "tq2_0"), "tq2_0 without a ternary plan is refused",
                 names=("ternary QAT",), allow_lines=1)
    expect_error(check, gguf("--ckpt", plain, "--tokenizer", "byte"), "a non-SentencePiece tokenizer is refused",
                 names=("SentencePiece",), allow_lines=1)
    expect_error(check, gguf("--ckpt", plain, "--tokenizer", os.path.join(d, "nope.model")), "a missing tokenizer is named",
                 names=("nope.model",), allow_lines=1)
    tq = {"qat": True, "start_step": 0, "weights": "ternary", "group": 128, "min_numel": 0, "embed": False}
    g128 = train("g128", LLAMA, quant=tq, tokenizer=SP)
    expect_error(check, gguf("--ckpt", g128, "--quant", "tq1_0"), "ternary groups of 128 are refused for tq1_0, saying why",
                 names=("groups of 128", "256"), allow_lines=1)
    i8 = train("int8", LLAMA, quant=dict(tq, weights="int8"), tokenizer=SP)
    expect_error(check, gguf("--ckpt", i8, "--quant", "tq2_0"), "an int8 plan is refused for tq2_0",
                 names=("int8", "ternary"), allow_lines=1)
    cap = train("softcap", dict(LLAMA, softcap=30), tokenizer=SP)
    expect_error(check, gguf("--ckpt", cap), "a llama model with a logit softcap is refused, naming the key",
                 names=("softcap",), allow_lines=1)
    with open(out, "rb") as f:
        check(f.read() == b"keep me", "the existing output file is untouched by every refusal")
    ok = os.path.join(d, "ok.gguf")
    expect_ok(check, tern("export", "--format", "gguf", "--ckpt", plain, "-o", ok, "--quant", "q8_0"), "the plain llama exports")

shutil.rmtree(d, ignore_errors=True)
check.finish("faults_gguf")
