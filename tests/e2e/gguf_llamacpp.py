"""`tern export --format gguf` checked by a real llama.cpp: the prebuilt CPU binaries of the npm
package node-llama-cpp (installed by scripts/install-deps.sh into the folder scripts/llama-cpp-dir
names), driven by tests/llama_cpp/llama_eval.mjs. docs/GGUF.md states the tolerances and why.

1. The stories260K teacher (GGUF v1, which llama.cpp no longer reads) imported by `tern import`
   and exported back as GGUF v3 (f32): llama.cpp loads it; its tokenizer gives tern's ids on real
   text; its greedy continuation equals `tern generate --temp 0` for 32 tokens; its logits equal
   tern's on the imported original (the round trip); re-importing the export gives the imported
   tensors bit for bit.
2. The same at f16 and q8_0: per-token log-probabilities within the stated tolerances.
3. A llama-shaped ternary-QAT student (dim 256, groups of 256, fp16 scales, int8 activations in
   blocks of 256) trained by tern for a few steps, exported as tq2_0 and tq1_0: llama.cpp's
   log-probabilities equal tern's own ternary evaluation (`tern logits --quantized`).

Skips (prints SKIP and passes) only when npm is missing or the shared teacher is absent."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from e2e_common import Checks, must_run, synthetic_language, write_shard

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.environ.get("TERN_DATA", os.path.join(REPO, "..", "shared", "data"))
TEACHER = os.path.join(DATA, "teacher", "stories260K-f32.gguf")
TEXT = os.path.join(DATA, "text", "tinyshakespeare.txt")
EVAL_JS = os.path.join(REPO, "tests", "llama_cpp", "llama_eval.mjs")

if not shutil.which("npm") or not shutil.which("node"):
    print("SKIP: npm (and node) not found: llama.cpp's prebuilt binaries come from the npm package node-llama-cpp "
          "(apt-get install npm, then scripts/install-deps.sh)")
    sys.exit(0)
if not os.path.exists(TEACHER) or not os.path.exists(TEXT):
    print(f"SKIP: {TEACHER} or {TEXT} not found (set TERN_DATA)")
    sys.exit(0)
NLC = subprocess.run(["bash", os.path.join(REPO, "scripts", "llama-cpp-dir")], capture_output=True, text=True).stdout.strip()
if not os.path.exists(os.path.join(NLC, "node_modules", "@node-llama-cpp", "linux-x64", "package.json")):
    print(f"FAIL: node-llama-cpp is not installed in {NLC}: run scripts/install-deps.sh (npm is present)")
    sys.exit(1)

check = Checks()
d = tempfile.mkdtemp(prefix="tern_gguf_")
T = os.path.join(os.environ.get("TERN_BIN", "build/bin"), "tern")
V_OF = {}


JOBS = []  # (llama.cpp request, what to check in its reply): all run by one node process at the end


def ask(handler, model, n_vocab, texts=(), sequences=(), greedy=None):
    req = {"model": model, "n_vocab": n_vocab, "texts": list(texts), "sequences": [list(map(int, s)) for s in sequences]}
    if greedy:
        req["greedy"] = {"text": greedy[0], "n": greedy[1]}
    JOBS.append((req, handler))


def run_jobs():
    """One node process for every queued request (loading llama.cpp once), then the checks."""
    path = os.path.join(d, "req.json")
    with open(path, "w") as f:
        json.dump([j[0] for j in JOBS], f)
    r = subprocess.run(["node", EVAL_JS, NLC, path], capture_output=True, text=True, timeout=600)
    replies = json.loads(r.stdout) if r.returncode == 0 else [{"err": r.stderr[-1500:]}] * len(JOBS)
    for (_, handler), o in zip(JOBS, replies):
        handler(o)


def tern_logprobs(ck, seqs, quantized=False):
    """tern's log-softmax rows [n, L, V] after each token of each of the n sequences of length L
    (tern logits over their concatenation with --seq-len L: each window is one sequence)."""
    L = len(seqs[0])
    shard, out = os.path.join(d, "seq.bin"), os.path.join(d, "seq_logits.h5")
    write_shard(shard, [t for s in seqs for t in s] + [seqs[0][0]])
    args = ["logits", "--ckpt", ck, "--data", shard, "-o", out, "--k", str(V_OF[ck]), "--dtype", "f32", "--seq-len", str(L)]
    must_run([T, *args, *(["--quantized"] if quantized else [])], "tern logits")
    with h5py.File(out, "r") as f:
        idx, val, lse = f["indices"][()], f["values"][()], f["lse"][()]
    z = np.full(idx.shape, -np.inf)
    np.put_along_axis(z, idx, val, axis=1)
    return (z - lse[:, None]).reshape(len(seqs), L, -1)


def log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def compare(name, ck, gguf, seqs, tol, quantized=False, then=None):
    """Queues llama.cpp's per-token log-probabilities of the sequences, checked against tern's:
    tol = (mean, max) bounds on |difference| over the predicted tokens; then(diff) runs after."""
    ref = tern_logprobs(ck, seqs, quantized)
    L = len(seqs[0])
    nxt = np.array([s[1:] for s in seqs])
    pick = lambda a: np.take_along_axis(a[:, : L - 1], nxt[:, :, None], axis=2)[:, :, 0]  # noqa: E731

    def handler(o):
        if not check("err" not in o, f"{name}: llama.cpp loads and evaluates it {o.get('err', '')}"):
            return
        got = log_softmax(np.array(o["logits"]))
        diff = np.abs(pick(got) - pick(ref)).ravel()
        full = np.abs(got[:, : L - 1] - ref[:, : L - 1]).max()
        check(diff.mean() <= tol[0] and diff.max() <= tol[1],
              f"{name}: per-token log-probs of {diff.size} tokens: |diff| mean {diff.mean():.2e} <= {tol[0]:g}, "
              f"median {np.median(diff):.2e}, max {diff.max():.2e} <= {tol[1]:g} (whole rows: max {full:.2e})")
        if then:
            then(diff)
    ask(handler, gguf, V_OF[ck], sequences=seqs)


# ---- 1. the teacher: import, export f32, round trip
print("stories260K teacher: import -> GGUF v3 f32 -> llama.cpp")
imp = os.path.join(d, "imp")
must_run([T, "import", TEACHER, "-o", imp], "tern import")
ck, tok = os.path.join(imp, "model.h5"), os.path.join(imp, "tokenizer.model")
V_OF[ck] = 512
ask(lambda o: check("err" in o and "version 1" in o["err"],
                    "llama.cpp refuses the original file (GGUF v1), hence the round trip through tern's logits"), TEACHER, 512)
g32 = os.path.join(d, "s260_f32.gguf")
must_run([T, "export", "--format", "gguf", "--ckpt", ck, "-o", g32], "tern export --format gguf")
with open(g32, "rb") as f:
    head = f.read(8)
check(head[:4] == b"GGUF" and int.from_bytes(head[4:8], "little") == 3, "the export is GGUF version 3")
imp2 = os.path.join(d, "imp2")
must_run([T, "import", g32, "-o", imp2], "tern import of the export")
with h5py.File(ck, "r") as a, h5py.File(os.path.join(imp2, "model.h5"), "r") as b:
    names = []
    a.visititems(lambda n, x: names.append(n) if isinstance(x, h5py.Dataset) and n.startswith("params") else None)
    same = names and all(n in b and np.array_equal(a[n][()], b[n][()]) for n in names)
check(same, f"re-importing the export gives the imported teacher's {len(names)} parameter tensors bit for bit")

# real text: tinyshakespeare's first lines (tokenizer ids) and its first 128 tokens (log-probs)
with open(TEXT, encoding="utf-8") as f:
    lines = [ln for ln in f.read(6000).split("\n") if ln.strip()][:60]
p = subprocess.run([T, "tokenizer", "encode", tok, "--json"], input="\n".join(lines) + "\n", capture_output=True, text=True)
tern_ids = json.loads(p.stdout)["ids"] if p.returncode == 0 else None
prompt = "Once upon a time"
r = must_run([T, "generate", "--ckpt", ck, "--prompt", prompt, "-n", "32", "--temp", "0", "--ids"], "tern generate")
gen = [int(x) for x in r.stdout.strip().splitlines()[-1].split()]


def check_f32(o):
    if not check("err" not in o, f"llama.cpp loads the f32 export {o.get('err', '')}"):
        return
    same = tern_ids is not None and o["tokens"] == tern_ids
    check(same, f"llama.cpp's tokenizer gives tern's ids on {len(lines)} lines of tinyshakespeare "
          f"({sum(map(len, tern_ids or []))} tokens); bos {o['bos']}, eos {o['eos']}")
    check(o["bos"] == 1 and o["eos"] == 2, "bos / eos ids 1 / 2 carried over")
    check(len(gen) == 32 and o["greedy"] == gen,
          f"greedy continuation of {prompt!r} ({o['greedy_prompt']}): llama.cpp's 32 tokens equal tern generate --temp 0's")


ask(check_f32, g32, 512, texts=lines, greedy=(prompt, 32))

flat = [i for ln in tern_ids for i in ln]
story = [[1] + flat[:127]]                                  # one 128-token sequence
windows = [[1] + flat[15 * k: 15 * k + 15] for k in range(8)]  # eight 16-token ones
# f32: both compute in float32 (llama.cpp's KV cache set to f32); only summation order differs
compare("f32 round trip", ck, g32, story, (2e-5, 2e-4))

# ---- 2. f16 and q8_0
for q, tol in (("f16", (5e-3, 5e-2)), ("q8_0", (0.1, 0.6))):
    gq = os.path.join(d, f"s260_{q}.gguf")
    must_run([T, "export", "--format", "gguf", "--ckpt", ck, "-o", gq, "--quant", q], f"export {q}")
    compare(q, ck, gq, story, tol)

# ---- 3. a ternary-QAT student: tq2_0 and tq1_0 against tern's own ternary evaluation
print("ternary-QAT llama student (dim 256) -> tq2_0 / tq1_0")
write_shard(os.path.join(d, "syn_train_000000.bin"), synthetic_language(20000) * 7 % 512)
cfg = {
    "name": "stu", "out_dir": os.path.join(d, "runs"), "seed": 1, "threads": 2,
    "model": {"arch": "llama", "vocab_size": 520, "layers": 2, "dim": 256, "heads": 4, "kv_heads": 2, "hidden": 512,
              "seq_len": 128, "tie_embeddings": False},
    "data": {"train": os.path.join(d, "syn_train_*.bin"), "tokenizer": tok, "seq_len": 64},
    "quant": {"qat": True, "start_step": 0, "weights": "ternary", "group": 256, "scale_dtype": "fp16", "act_bits": 8,
              "act_block": 256, "min_numel": 0, "embed": False,
              # the head ternary too would be exported, but tern runs it on float activations while
              # llama.cpp's TQ kernels quantize its input (docs/GGUF.md); BitNet keeps it in float
              "rules": [{"match": "output.weight", "weights": "none"}]},
    "export": {"passthrough": "fp32"},
    "train": {"batch_tokens": 256, "micro_batch": 4, "max_steps": 8, "log_every": 1, "eval_at_end": False},
}
with open(os.path.join(d, "stu.json"), "w") as f:
    json.dump(cfg, f)
must_run([T, "train", os.path.join(d, "stu.json"), "--quiet"], "train the ternary student")
sck = os.path.join(d, "runs", "stu", "ckpt", "latest.h5")
V_OF[sck] = 520  # 8 ids past the tokenizer: exported as unused tokens
for q in ("tq2_0", "tq1_0"):
    gq = os.path.join(d, f"stu_{q}.gguf")
    r = must_run([T, "export", "--format", "gguf", "--ckpt", sck, "-o", gq, "--quant", q, "--json"], f"export {q}")
    info = json.loads(r.stdout.strip().splitlines()[-1])
    check(info["ternary_tensors"] == 14 and info["ternary_exact"], f"{q}: the 14 ternary matrices mapped exactly (fp16 scales)")
    # the same trits and scales on both sides, int8 activations per 256-block on both (llama.cpp's q8_K):
    # float summation order aside, equal, except after an activation that the two round to
    # different int8 codes (docs/GGUF.md): short windows keep one such event from reaching far
    compare(f"{q} vs tern --quantized", sck, gq, windows, (2e-3, 2e-2), quantized=True,
            then=lambda diff, q=q: check(np.mean(diff <= 1e-4) >= 0.5,
                                         f"{q}: {np.mean(diff <= 1e-4):.0%} of the tokens agree within 1e-4 (>= 50%)"))

print(f"llama.cpp: {len(JOBS)} requests in one process")
run_jobs()
shutil.rmtree(d, ignore_errors=True)
check.finish("gguf_llamacpp")
