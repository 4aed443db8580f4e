"""Fault injection, text generation: `tern generate` and `tern-run generate` refuse the same bad
sampling options with the same one line (exit 2: data/gen_args.c holds the rules for both), take
the prompt from --prompt, --prompt-file or standard input alike, and generate far past the
model's seq_len (a sliding window of context, in bounded time per token).

The model: a 1-layer, 16-wide GPT with the built-in byte tokenizer, trained 2 steps (seconds)."""
import json
import os
import shutil
import tempfile

from fault_lib import (Checks, expect_error, expect_ok, synthetic_language, tern, tern_run, write_shard)

check = Checks()
d = tempfile.mkdtemp(prefix="tern_faults_gen_")
write_shard(os.path.join(d, "syn_train_000000.bin"), synthetic_language(4000))
cfg = {
    "name": "g", "out_dir": os.path.join(d, "runs"), "seed": 3, "threads": 1,
    "model": {"arch": "gpt", "vocab_size": 260, "layers": 1, "dim": 16, "heads": 2, "kv_heads": 1},
    "data": {"train": os.path.join(d, "syn_train_*.bin"), "tokenizer": "byte", "seq_len": 8},
    "train": {"batch_tokens": 32, "micro_batch": 4, "max_steps": 2, "log_every": 1, "eval_at_end": False},
}
with open(os.path.join(d, "cfg.json"), "w") as f:
    json.dump(cfg, f)
expect_ok(check, tern("train", os.path.join(d, "cfg.json"), "--quiet"), "train a tiny byte-level model")
ck = os.path.join(d, "runs", "g", "ckpt", "latest.h5")
# The byte tokenizer's EOS (257) never follows BOS in training, but an untrained model may still pick it and
# end early. Its tied embedding row set to zero gives it logit 0, below the argmax (some logit is positive):
# greedy decoding then never stops early, so the long run below must produce every token asked for.
import h5py  # noqa: E402

with h5py.File(ck, "r+") as f:
    emb = f["params/tok_emb.weight"]
    row = emb[257]
    row[:] = 0
    emb[257] = row
art = os.path.join(d, "g.tern")
expect_ok(check, tern("export", "--ckpt", ck, "-o", art), "export it for tern-run")


def both(*args, **kw):
    """(tern generate, tern-run generate) with the same options."""
    return ("tern generate", tern("generate", "--ckpt", ck, "--threads", "1", *args, **kw)), \
           ("tern-run generate", tern_run("generate", art, "--threads", "1", *args, **kw))


print("bad sampling options: one line naming the option, exit 2, in both")
bad = [("--temp", "nan"), ("--temp", "-1"), ("--temp", "inf"), ("--top-p", "0"), ("--top-p", "2"), ("--top-p", "nan"),
       ("-n", "abc"), ("-n", "0"), ("-n", "-3"), ("-n", "1000001"), ("-n", "12abc"), ("--tokens", "1e3"),
       ("--seed", "-1"), ("--seed", "x"), ("--temp", None), ("-n", None)]
for opt, value in bad:
    args = [opt] if value is None else [opt, value]
    for who, r in both(*args):
        expect_error(check, r, f"{who} {' '.join(args)}", names=(opt,), allow_lines=1)
        check(r.returncode == 2, f"  ... exit status {r.returncode} (usage error: 2)")
for value in ("0", "nan", "-2"):
    r = tern_run("generate", art, "--rep-penalty", value)
    expect_error(check, r, f"tern-run generate --rep-penalty {value}", names=("--rep-penalty",), allow_lines=1)
r = tern_run("generate", art, "--prompt", "a", "--prompt-file", "x")
expect_error(check, r, "--prompt and --prompt-file together", names=("--prompt-file",), allow_lines=1)

print("the prompt from the command line, a file or standard input")
prompt = "Tern\nx"  # with BOS, 7 of the 8 positions: tern-run refuses prompts longer than its context
pfile = os.path.join(d, "prompt.txt")
with open(pfile, "w") as f:
    f.write(prompt)
greedy = ("-n", "6", "--temp", "0")
for who, arg in both("--prompt", prompt, *greedy):
    ref = arg.stdout
    expect_ok(check, arg, f"{who} --prompt TEXT")
    check(ref.startswith(prompt), f"{who}: the output continues the prompt")
    run = tern if who == "tern generate" else tern_run
    head = ["generate", "--ckpt", ck] if who == "tern generate" else ["generate", art]
    r_file = run(*head, "--threads", "1", "--prompt-file", pfile, *greedy)
    r_stdin = run(*head, "--threads", "1", "--prompt", "-", *greedy, stdin=prompt)
    check(r_file.returncode == 0 and r_file.stdout == ref, f"{who} --prompt-file: the same text")
    check(r_stdin.returncode == 0 and r_stdin.stdout == ref, f"{who} --prompt -: the same text")
    missing = os.path.join(d, "no_such_prompt.txt")
    r = run(*head, "--prompt-file", missing)
    expect_error(check, r, f"{who}: a missing prompt file", names=(missing,), allow_lines=1)
    check(r.returncode == 1, f"  ... exit status {r.returncode} (bad input: 1)")

print("generation far past seq_len (8): a sliding window")
n = 3000
r = tern("generate", "--ckpt", ck, "--threads", "1", "-n", str(n), "--temp", "0", "--ids", timeout=120)
ids = r.stdout.strip().splitlines()[-1].split() if r.returncode == 0 else []
check(r.returncode == 0 and len(ids) == n, f"tern generate -n {n} gives {len(ids)} ids")
r = tern_run("generate", art, "--threads", "1", "-n", str(n), "--temp", "0", "--json", "--no-stop", timeout=120)
check(r.returncode == 0 and len(json.loads(r.stdout)["ids"]) == n, f"tern-run generate -n {n} too")
r = tern("generate", "--help")
check(r.returncode == 0 and "sliding window" in r.stdout, "tern generate --help says how the context is bounded")

print("a tern-run option given last without its value: one usage line, exit 2")
for sub, opt in [("eval", "--data"), ("generate", "--temp"), ("bench", "--threads")]:
    r = tern_run(sub, art, opt)
    expect_error(check, r, f"tern-run {sub} {opt} (no value)", names=(opt, "needs a value"), allow_lines=1)
    check(r.returncode == 2, f"  ... exit status {r.returncode} (usage: 2)")

print("tern-run --kv with an unknown KV cache type: one error line, exit 1")
for sub, extra in [("generate", ["-n", "2"]), ("eval", ["--data", os.path.join(d, "none_*.bin")]), ("bench", ["--gen", "2"])]:
    r = tern_run(sub, art, "--threads", "1", "--kv", "bf16", *extra)
    expect_error(check, r, f"tern-run {sub} --kv bf16", names=("unknown KV cache type", "bf16"), allow_lines=1)
r = tern_run("generate", art, "--threads", "1", "-n", "4", "--temp", "0", "--kv", "f16", "--json", "--no-stop")
check(r.returncode == 0 and len(json.loads(r.stdout)["ids"]) == 4, "tern-run generate --kv f16 works")

shutil.rmtree(d, ignore_errors=True)
check.finish("faults_generate")
