"""The real pretrained teacher (../shared/data/teacher/stories260K-f32.gguf, karpathy's tinyllamas
260K, Llama-2 architecture) imported with `tern import`:

- tokenizer: the SentencePiece model tern writes from the GGUF vocabulary loads in the official
  tools, and `tern tokenizer encode` gives the same ids as `spm_encode` on real text;
- model: an independent reference — this script parses the GGUF itself and runs Llama-2 in
  PyTorch float64 the way Meta / llama2.c do (RoPE on adjacent pairs, no weight permutation) —
  gives the same logits as `tern logits` (which runs tern's permuted, rotate-half form) within
  1e-4, on real text;
- sanity of the whole path: on a TinyStories-style sentence the teacher is far better than on
  the Brown corpus (it was trained on children's stories).

Skips when the teacher file is absent."""
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from e2e_common import Checks, write_shard  # noqa: E402

DATA = os.environ.get("TERN_DATA", "../shared/data")
GGUF = os.path.join(DATA, "teacher", "stories260K-f32.gguf")
BIN = os.path.join(os.environ.get("TERN_BIN", "build/bin"), "tern")
if not os.path.exists(GGUF):
    print(f"SKIP: {GGUF} not found (set TERN_DATA)")
    sys.exit(0)
check = Checks()


def read_gguf(path):
    """A minimal GGUF v1-v3 reader: metadata dict and {name: float64 array in PyTorch layout}."""
    b = open(path, "rb").read()
    assert b[:4] == b"GGUF"
    ver = struct.unpack_from("<I", b, 4)[0]
    o = [8]

    def rd(fmt):
        v = struct.unpack_from(fmt, b, o[0])[0]
        o[0] += struct.calcsize(fmt)
        return v

    cnt = (lambda: rd("<I")) if ver == 1 else (lambda: rd("<Q"))

    def rs():
        n = cnt()
        s = b[o[0]:o[0] + n].decode("utf-8", "replace")
        o[0] += n
        return s

    fmts = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}

    def val(t):
        if t == 8:
            return rs()
        if t == 9:
            at = rd("<I")
            return [val(at) for _ in range(cnt())]
        return rd(fmts[t])

    nt, nkv = cnt(), cnt()
    meta = {}
    for _ in range(nkv):
        k = rs()
        meta[k] = val(rd("<I"))
    infos = []
    for _ in range(nt):
        name = rs()
        dims = [cnt() for _ in range(rd("<I"))]
        infos.append((name, dims, rd("<I"), rd("<Q")))
    align = meta.get("general.alignment", 32)
    base = (o[0] + align - 1) // align * align
    tensors = {}
    for name, dims, typ, off in infos:
        assert typ == 0, "F32 only here"
        n = int(np.prod(dims))
        a = np.frombuffer(b, dtype="<f4", count=n, offset=base + off).astype(np.float64)
        tensors[name] = a.reshape(list(reversed(dims)))  # ggml dims are fastest-first
    return meta, tensors


def llama_ref(meta, W, tokens):
    """Llama-2 forward in float64 (llama2.c's run.c formulation): logits [T, V]."""
    dim = meta["llama.embedding_length"]
    H = meta["llama.attention.head_count"]
    G = meta.get("llama.attention.head_count_kv", H)
    D = dim // H
    eps = meta["llama.attention.layer_norm_rms_epsilon"]
    T = len(tokens)
    t = lambda n: torch.tensor(W[n])  # noqa: E731
    x = t("token_embd.weight")[torch.tensor(tokens)]
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    inv = 10000.0 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    ang = pos * inv[None, :]                                   # [T, D/2]
    cos, sin = torch.cos(ang), torch.sin(ang)

    def rope(z):  # z [T, heads, D]; rotate adjacent pairs (z_2i, z_2i+1)
        a, b_ = z[..., 0::2], z[..., 1::2]
        out = torch.empty_like(z)
        out[..., 0::2] = a * cos[:, None, :] - b_ * sin[:, None, :]
        out[..., 1::2] = a * sin[:, None, :] + b_ * cos[:, None, :]
        return out

    def rms(z, g):
        return z / torch.sqrt((z * z).mean(-1, keepdim=True) + eps) * g

    mask = torch.triu(torch.full((T, T), float("-inf"), dtype=torch.float64), 1)
    for i in range(meta["llama.block_count"]):
        p = f"blk.{i}."
        h = rms(x, t(p + "attn_norm.weight"))
        q = rope((h @ t(p + "attn_q.weight").T).view(T, H, D))
        k = rope((h @ t(p + "attn_k.weight").T).view(T, G, D))
        v = (h @ t(p + "attn_v.weight").T).view(T, G, D)
        k = k.repeat_interleave(H // G, dim=1)
        v = v.repeat_interleave(H // G, dim=1)
        s = torch.einsum("thd,uhd->htu", q, k) / np.sqrt(D) + mask
        y = torch.einsum("htu,uhd->thd", torch.softmax(s, -1), v).reshape(T, dim)
        x = x + y @ t(p + "attn_output.weight").T
        h = rms(x, t(p + "ffn_norm.weight"))
        u = torch.nn.functional.silu(h @ t(p + "ffn_gate.weight").T) * (h @ t(p + "ffn_up.weight").T)
        x = x + u @ t(p + "ffn_down.weight").T
    x = rms(x, t("output_norm.weight"))
    return (x @ t("output.weight").T).numpy()


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300)
    if r.returncode:
        print(r.stderr)
    return r


d = tempfile.mkdtemp(prefix="tern_llama_")
out = os.path.join(d, "st260")
r = run("import", GGUF, "-o", out)
check(r.returncode == 0, f"tern import: {r.stderr.strip()}")
tok_model, ck = os.path.join(out, "tokenizer.model"), os.path.join(out, "model.h5")

print("tokenizer")
import sentencepiece as spm  # noqa: E402

sp = spm.SentencePieceProcessor(model_file=tok_model)
check(sp.get_piece_size() == 512 and sp.bos_id() == 1 and sp.eos_id() == 2, "the written model loads in sentencepiece: 512 pieces, bos 1, eos 2")
lines = []
for name in ("tinyshakespeare.txt", "state_union.txt", "brown.txt"):
    with open(os.path.join(DATA, "text", name), encoding="utf-8", errors="replace") as f:
        lines += [ln.rstrip("\n") for ln in f.readlines()[:400]]
lines = [ln for ln in lines if ln.strip()]
text_path = os.path.join(d, "lines.txt")
with open(text_path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
ref = subprocess.run(["spm_encode", f"--model={tok_model}", "--output_format=id", f"--input={text_path}"],
                     capture_output=True, text=True)
ours = run("tokenizer", "encode", tok_model, "--file", text_path)
ref_ids, our_ids = ref.stdout.splitlines(), ours.stdout.splitlines()
diff = sum(a != b for a, b in zip(ref_ids, our_ids)) + abs(len(ref_ids) - len(our_ids))
ntok = sum(len(x.split()) for x in ref_ids)
check(ref.returncode == 0 and ours.returncode == 0 and diff == 0,
      f"tern == spm_encode on {len(lines)} lines of real text ({ntok} tokens): {diff} lines differ")

print("model: tern logits vs an independent float64 Llama-2 in PyTorch")
meta, W = read_gguf(GGUF)
T = 128
with open(os.path.join(DATA, "text", "state_union.txt"), encoding="utf-8", errors="replace") as f:
    ids = [1] + sp.encode(f.read(4000))
ids = ids[: 2 * T + 1]
shard = os.path.join(d, "su_000000.bin")
write_shard(shard, ids)
lf = os.path.join(d, "logits.h5")
r = run("logits", "--ckpt", ck, "--data", shard, "-o", lf, "--k", "512", "--dtype", "f32", "--seq-len", str(T))
check(r.returncode == 0, "tern logits with the full vocabulary")
import h5py  # noqa: E402

with h5py.File(lf, "r") as f:
    idx, vals = np.array(f["indices"]), np.array(f["values"])
ours = np.zeros((len(idx), 512))
np.put_along_axis(ours, idx.astype(np.int64), vals, axis=1)
refl = np.concatenate([llama_ref(meta, W, ids[w * T:(w + 1) * T]) for w in range(2)])
err = np.abs(ours - refl).max() / max(np.abs(refl).max(), 1.0)  # logits in nats: floor 1
check(ours.shape == refl.shape and err < 1e-4, f"logits of {ours.shape[0]} positions x 512: max |diff| / max |ref| = {err:.2e} (tolerance 1e-4)")
tgt = np.array(ids[1:2 * T + 1])
lse = lambda z: z.max(1) + np.log(np.exp(z - z.max(1, keepdims=True)).sum(1))  # noqa: E731
ce_ref = float(np.mean(lse(refl) - refl[np.arange(2 * T), tgt]))
ce_ours = float(np.mean(lse(ours) - ours[np.arange(2 * T), tgt]))
check(abs(ce_ref - ce_ours) < 1e-4, f"cross-entropy on State of the Union text: tern {ce_ours:.5f} vs reference {ce_ref:.5f}")

print("sanity: the teacher knows children's stories")
story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends."
sid = [1] + sp.encode(story)
sl = llama_ref(meta, W, sid)
ce_story = float(np.mean(lse(sl[:-1]) - sl[np.arange(len(sid) - 1), sid[1:]]))
check(ce_story < 0.6 * ce_ref, f"loss on a TinyStories-style sentence {ce_story:.3f} vs State of the Union {ce_ref:.3f}")

print("generation: tern generate (greedy) == greedy decoding of the reference")
prompt = "Once upon a time"
gen = [1] + sp.encode(prompt)
for _ in range(40):
    gen.append(int(np.argmax(llama_ref(meta, W, gen)[-1])))
r = run("generate", "--ckpt", ck, "--prompt", prompt, "-n", "40", "--temp", "0", "--ids")
got = [int(x) for x in r.stdout.strip().splitlines()[-1].split()] if r.returncode == 0 else []
check(got == gen[len(sp.encode(prompt)) + 1:], f"40 greedy tokens identical: {r.stdout.strip().splitlines()[0] if got else r.stderr}")
a = run("generate", "--ckpt", ck, "--prompt", prompt, "-n", "30", "--seed", "5").stdout
b = run("generate", "--ckpt", ck, "--prompt", prompt, "-n", "30", "--seed", "5").stdout
c = run("generate", "--ckpt", ck, "--prompt", prompt, "-n", "30", "--seed", "6").stdout
check(a == b and a != c and a.startswith(prompt), "sampling: the same seed repeats, another seed differs")

print("export and the runtime: the teacher as an artifact, run by tern-run")
RUN = os.path.join(os.path.dirname(BIN), "tern-run")
vshard = os.path.join(d, "story_000000.bin")
stories = [1] + sp.encode(story) + [1] + sp.encode("Tom had a red ball. He liked to throw it to his dog Max. One day the ball went over the fence.")
write_shard(vshard, stories)
import json  # noqa: E402

def eval_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return json.loads(r.stdout) if r.returncode == 0 else {"err": r.stderr}

fw = eval_json([BIN, "eval", "--ckpt", ck, "--data", vshard, "--seq-len", "32", "--json"])
for quant, tol in (("none", 1e-5), ("int8", 0.05)):
    art = os.path.join(d, f"st260_{quant}.tern")
    r = run("export", "--ckpt", ck, "-o", art, "--quant", quant, "--set", "export.passthrough=fp32", "--set", "quant.min_numel=1024")
    rt = eval_json([RUN, "eval", art, "--data", vshard, "--seq-len", "32", "--json"]) if r.returncode == 0 else {"err": r.stderr}
    diff = abs(rt["val_loss"] - fw["val_loss"]) if "val_loss" in rt and "val_loss" in fw else float("inf")
    ok = diff <= tol and (quant == "none" or diff > 1e-5)  # int8 must really have quantized
    check(ok, f"export --quant {quant}: tern-run eval {rt.get('val_loss', rt.get('err'))} vs tern eval {fw.get('val_loss')} "
              f"(tolerance {tol:g}; Llama runs as a GPT with its norm gains folded into the weights)")
r = subprocess.run([RUN, "generate", os.path.join(d, "st260_none.tern"), "--prompt", prompt, "-n", "12", "--temp", "0"],
                   capture_output=True, text=True)
check(r.returncode == 0 and r.stdout.startswith(prompt + ", there was a little girl named Lily"),
      f"tern-run generate: {r.stdout.strip()[:80]}")

print("damaged files")
raw = open(GGUF, "rb").read()
bad = {
    "truncated": raw[: len(raw) // 2],
    "wrong magic": b"GGUX" + raw[4:],
    "version 9": raw[:4] + struct.pack("<I", 9) + raw[8:],
    "tensor count 2^31": raw[:8] + struct.pack("<I", 2**31) + raw[12:],
    "metadata cut": raw[:600],
    "empty": b"",
}
for what, blob in bad.items():
    p = os.path.join(d, "bad.gguf")
    with open(p, "wb") as f:
        f.write(blob)
    o = os.path.join(d, "bad_out")
    r = run("import", p, "-o", o)
    check(r.returncode == 1 and r.stderr.count("\n") == 1 and "bad.gguf" in r.stderr and not os.path.exists(o),
          f"{what}: {r.stderr.strip()}")

import shutil  # noqa: E402

shutil.rmtree(d, ignore_errors=True)
check.finish("llama_gguf")
