"""Fault injection: tokenizer files (issue 10, part 5).

A tokenizer is recognised by a positive signature in its content (tern BPE: "tern-bpe 1";
MaxMatch vocab.txt: text with an <unk> / [UNK] line; SentencePiece: a ModelProto), never guessed:
a tern BPE file with a damaged first line used to load as a MaxMatch vocab and report a wrong
val_bpb. Every damaged or unrecognised file given to `tern eval --tokenizer`, `tern train`
(data.tokenizer), `tern prepare`, `tern export --tokenizer` and `tern tokenizer info` must end in
one error line naming the file, an exit status in 1..127, no sanitizer report, and earlier outputs
intact."""
import os
import shutil

from fault_lib import expect_ok, intact, snapshot, tern
from tiny_run import refused, setup

S = setup("tern_faults_tok_")
checks, d, cfg_path, base, ckpt, val, base_before = S.checks, S.d, S.cfg_path, S.base, S.ckpt, S.val, S.base_before


def put(name, data):
    p = os.path.join(d, name)
    with open(p, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return p


words = "the of and a to in is was he that it for on with as his at by be this had not are but from or have an they".split()
corpus = put("corpus.txt", "\n".join(" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(12)) for i in range(400)))
bpe = os.path.join(d, "bpe.tok")
expect_ok(checks, tern("tokenizer", "train", corpus, "--vocab", "300", "-o", bpe), "control: tern tokenizer train writes a BPE file")
bpe_text = open(bpe, "rb").read()
vocab_txt = put("vocab.txt", "<unk>\n<s>\n" + "".join(f"{w}\n" for w in words) + "".join(f"<0x{b:02X}>\n" for b in range(32, 64)))
r = tern("eval", "--ckpt", ckpt, "--data", val, "--tokenizer", bpe, "--json")
expect_ok(checks, r, "control: eval with the BPE tokenizer reports val_bpb")
expect_ok(checks, tern("eval", "--ckpt", ckpt, "--data", val, "--tokenizer", vocab_txt), "control: eval with a vocab.txt that has <unk>")
prep_out = os.path.join(d, "prepared")
expect_ok(checks, tern("prepare", corpus, "--tokenizer", bpe, "-o", prep_out, "--split", "line"), "control: tern prepare")
prep_before = snapshot(prep_out)

rnd = bytes((i * 1103515245 + 12345) >> 16 & 0xFF for i in range(4096))
cases = {
    "BPE, damaged magic": bpe_text.replace(b"tern-bpe", b"tern-bpX", 1),
    "BPE, version 2": bpe_text.replace(b"tern-bpe 1", b"tern-bpe 2", 1),
    "BPE, cut in half": bpe_text[: len(bpe_text) // 2],
    "BPE, merge naming a later id": b"\n".join(bpe_text.split(b"\n")[:4] + [b"299 32"] + bpe_text.split(b"\n")[5:]),
    "BPE, first line only": b"tern-bpe 1\n",
    "prose": b"It is a truth universally acknowledged, that a single man in possession of a good fortune\n" * 20,
    "vocab.txt without <unk>": "".join(f"{w}\n" for w in words).encode(),
    "SentencePiece .vocab (text)": "<unk>\t0\n<s>\t0\n</s>\t0\n\u2581the\t-1.5\n".encode(),
    "JSON": b'{"model": {"type": "BPE", "vocab": {"a": 0}}}\n',
    "Latin-1 text": "caf\xe9 cr\xe8me <unk>\n".encode("latin-1"),
    "empty": b"",
    "random bytes": rnd,
    "random bytes after a ModelProto key": b"\x0a" + rnd[1:],
}
sp_model = os.path.join(os.environ.get("TERN_DATA", "../shared/data"), "fineweb", "fineweb_1024_bpe.model")
if os.path.exists(sp_model):
    sp = open(sp_model, "rb").read()
    expect_ok(checks, tern("tokenizer", "info", sp_model), "control: the official SentencePiece model loads")
    cases["SentencePiece, cut at 1000 bytes"] = sp[:1000]
    cases["SentencePiece, cut 100 bytes short"] = sp[:-100]
else:
    print(f"  SKIP: damaged SentencePiece cases need {sp_model}")

paths = [(name, put("tok_" + "".join(c if c.isalnum() else "_" for c in name), data)) for name, data in cases.items()]
folder = os.path.join(d, "a_folder.model")
os.makedirs(folder)
paths += [("a folder", folder), ("a missing file", os.path.join(d, "missing.model"))]
for name, p in paths:
    refused(checks, tern("tokenizer", "info", p), f"tokenizer info, {name}", names=[p])
    refused(checks, tern("eval", "--ckpt", ckpt, "--data", val, "--tokenizer", p), f"eval --tokenizer, {name}", names=[p])
    refused(checks, tern("train", cfg_path, "--quiet", "--set", "name=tokbad", "--set", f"data.tokenizer={p}"),
            f"train data.tokenizer, {name}", names=[p])
    refused(checks, tern("prepare", corpus, "--tokenizer", p, "-o", prep_out, "--split", "line"), f"prepare, {name}", names=[p])
    refused(checks, tern("export", "--ckpt", ckpt, "-o", os.path.join(d, "x.tern"), "--tokenizer", p), f"export --tokenizer, {name}",
            names=[p])
checks(not os.path.exists(os.path.join(d, "runs", "tokbad")) and not os.path.exists(os.path.join(d, "x.tern")),
       "no run folder or artifact left by the refused tokenizers")
intact(checks, prep_out, prep_before, "the earlier prepared shards")
intact(checks, base, base_before, "the trained run")
shutil.rmtree(d, ignore_errors=True)
checks.finish("faults_tokenizer")
