#!/usr/bin/env python3
"""Seed inputs for the fuzz harnesses (tests/fuzz/README.md).

  make_seeds.py --out DIR              writes the small synthetic seeds of every target into
                                       DIR/<target>/ (what tests/fuzz/corpus/ holds; deterministic)
  make_seeds.py --derive DATA --out DIR [--repo ROOT]
                                       writes seeds derived from the shared data folder
                                       (../shared/data) and the repo's experiment configs; run at
                                       test time, never committed

Each seed is laid out the way its harness reads its input: structural choices from the front,
bulk values from the back, `split` inputs as a 16-bit big-endian length of the second part.
"""
import argparse
import glob
import os
import random
import struct

# ---------------------------------------------------------------- small encoders


def split_input(first, second, prefix=b""):
    """prefix, then the 16-bit length of `second`, then first + second (fz_split)."""
    return prefix + struct.pack(">H", len(second)) + first + second


def shard_bin(tokens):
    hdr = struct.pack("<3i", 20240520, 1, len(tokens)) + bytes(1024 - 12)
    return hdr + struct.pack("<%dH" % len(tokens), *tokens)


def pb_varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def pb_field(num, wire, payload):
    key = pb_varint(num << 3 | wire)
    if wire == 0:
        return key + pb_varint(payload)
    if wire == 5:
        return key + struct.pack("<f", payload)
    return key + pb_varint(len(payload)) + payload


def sp_model(pieces, model_type=2, byte_fallback=False, normalizer=b"identity", charsmap=None):
    """A SentencePiece ModelProto: pieces as (text, score, type)."""
    out = b""
    for text, score, ptype in pieces:
        out += pb_field(1, 2, pb_field(1, 2, text.encode()) + pb_field(2, 5, score) + pb_field(3, 0, ptype))
    trainer = pb_field(3, 0, model_type) + pb_field(4, 0, len(pieces)) + pb_field(35, 0, int(byte_fallback))
    out += pb_field(2, 2, trainer)
    norm = pb_field(1, 2, normalizer) + pb_field(3, 0, 1) + pb_field(4, 0, 1) + pb_field(5, 0, 1)
    if charsmap is not None:
        norm += pb_field(2, 2, charsmap)
    return out + pb_field(3, 2, norm)


def charsmap_bad_offset():
    """A precompiled charsmap (u32 trie size, Darts-clone units, strings) whose one rule, for
    "a", points past its 2 bytes of strings: the model loads and encoding "a" is refused."""
    units = [0] * 0x62
    units[0x61] = (1 << 10) | (1 << 8) | 0x61  # label 'a', has a leaf, offset 1
    units[0x60] = (1 << 31) | 1000  # the leaf: replacement string at offset 1000
    return struct.pack("<I", 4 * len(units)) + struct.pack("<%dI" % len(units), *units) + b"x\x00"


def sp_tiny(byte_fallback=False, model_type=2, charsmap=None):
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
    if byte_fallback:
        pieces += [("<0x%02X>" % b, 0.0, 6) for b in range(256)]
    words = ["\u2581", "a", "b", "c", "e", "h", "t", "\u2581a", "ab", "\u2581ab", "th", "\u2581th", "the", "\u2581the", "1"]
    pieces += [(w, -float(i), 1) for i, w in enumerate(words)]
    pieces += [("<sep>", 0.0, 4), ("zz", 0.0, 5)]
    return sp_model(pieces, model_type, byte_fallback, charsmap=charsmap)


def gguf_str(s, version):
    b = s.encode()
    return (struct.pack("<I", len(b)) if version == 1 else struct.pack("<Q", len(b))) + b


def gguf_file(version, kvs, tensors):
    """kvs: (key, type, value); tensors: (name, dims, ggml_type, raw bytes)."""
    cnt = (lambda n: struct.pack("<I", n)) if version == 1 else (lambda n: struct.pack("<Q", n))
    out = b"GGUF" + struct.pack("<I", version) + cnt(len(tensors)) + cnt(len(kvs))
    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q", 12: "<d"}
    for key, t, value in kvs:
        out += gguf_str(key, version) + struct.pack("<I", t)
        if t == 8:
            out += gguf_str(value, version)
        elif t == 9:
            et, items = value
            out += struct.pack("<I", et) + cnt(len(items))
            for it in items:
                out += gguf_str(it, version) if et == 8 else struct.pack(scalar[et], it)
        else:
            out += struct.pack(scalar[t], value)
    offset, blobs = 0, b""
    for name, dims, gtype, raw in tensors:
        out += gguf_str(name, version) + struct.pack("<I", len(dims))
        for d in dims:
            out += cnt(d)
        out += struct.pack("<I", gtype) + struct.pack("<Q", offset)
        pad = (-len(raw)) % 32
        blobs += raw + bytes(pad)
        offset += len(raw) + pad
    out += bytes((-len(out)) % 32)
    return out + blobs


def gguf_tiny(version):
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(4)] + ["\u2581a", "b", "\u2581ab"]
    types = [2, 3, 3] + [6] * 4 + [1, 1, 1]
    kvs = [("general.architecture", 8, "llama"), ("general.alignment", 4, 32), ("llama.embedding_length", 4, 4),
           ("llama.block_count", 4, 1), ("llama.feed_forward_length", 4, 8), ("llama.attention.head_count", 4, 2),
           ("llama.context_length", 4, 16), ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5),
           ("tokenizer.ggml.model", 8, "llama"), ("tokenizer.ggml.tokens", 9, (8, toks)),
           ("tokenizer.ggml.scores", 9, (6, [0.0] * 3 + [0.0] * 4 + [-1.0, -2.0, -3.0])),
           ("tokenizer.ggml.token_type", 9, (5, types)), ("tokenizer.ggml.bos_token_id", 4, 1),
           ("tokenizer.ggml.eos_token_id", 4, 2)]
    tensors = [("token_embd.weight", [4, 10], 0, struct.pack("<40f", *[i / 8 for i in range(40)])),
               ("output_norm.weight", [4], 1, struct.pack("<4e", 1.0, -2.0, 0.5, 0.0))]
    return gguf_file(version, kvs, tensors)


def choices(rng, n, *first):
    """The choices a harness takes before building its file (fz_take_front): the given first
    bytes (e.g. which vocabulary), then small random ones."""
    return bytes(first) + bytes(rng.randrange(16) for _ in range(n - len(first)))


def small(rng, n, below=4):
    return bytes(rng.randrange(below) for _ in range(n))


def structured(rng, n, keep=True):
    """Bytes for a template-driven harness: below 176 every template item is kept as is."""
    return bytes(rng.randrange(176) if keep else rng.randrange(256) for _ in range(n))


# ---------------------------------------------------------------- the synthetic seeds

TINY_CONFIGS = {
    "gpt_groups": '{"name":"t","seed":3,"model":{"arch":"gpt","vocab_size":32,"layers":2,"dim":8,"heads":2,"kv_heads":1,'
                  '"seq_len":16},"data":{"seq_len":16},"optim":{"groups":{"matrix":{"type":"muon","lr":0.02}},'
                  '"schedule":{"kind":"cosine","warmup_steps":2}},"train":{"max_steps":10,"batch_tokens":32}}',
    "llama_qat": '{"model":{"arch":"llama","vocab_size":40,"layers":1,"dim":8,"heads":2,"kv_heads":1,"hidden":12,'
                 '"seq_len":8},"data":{"seq_len":8},"quant":{"qat":true,"weights":"int5","min_numel":0},'
                 '"export":{"zstd_level":3}}',
    "trn_mezo": '{"model":{"arch":"trn_hybrid","vocab_size":24,"layout":"TA","dim":8,"heads":2,"kv_heads":1,'
                '"oscillators":3,"mlp_hidden":8,"swiglu_hidden":6,"bigram_rows":5,"bigram_dim":4,"seq_len":8},'
                '"data":{"seq_len":8},"optim":{"mezo":{"enabled":true,"match":"blocks.*"},"ema":{"enabled":true}}}',
}
BPE_FILE = ("tern-bpe 1\nvocab_size 262\npretokenizer words-v1\nmerges 3\n116 104\n256 101\n32 257\nspecials 3\n"
            "<s> 259\n</s> 260\n<pad> 261\n")
VOCAB_TXT = "<unk>\n<s>\n</s>\nthe\nth\nt\nh\ne\n \n<0x0A>\nab\na\n\nb\n[MASK]\r\n"
TEXT = "the thin cat ate 12 apples.\nthe end\n".encode()


def synthetic(out):
    rng = random.Random(20240520)
    seeds = {
        "shard": {"bin": b"\x00" + shard_bin([1, 5, 9, 2, 1, 7, 3, 3, 4, 1, 8, 0] * 3),
                  "structured": b"\x01" + choices(rng, 32, 6) + b"\x00\x40\x00" + small(rng, 128)},
        "h5_tokens": {"u16": choices(rng, 32, 6) + b"\x00\x80\x00\x00\x00" + small(rng, 256),
                      "u32": choices(rng, 32, 7) + b"\x00\x30\x01\x00\x00" + small(rng, 192)},
        "teacher": {"f32": choices(rng, 32, 1) + structured(rng, 32) + bytes(600),
                    "f16": choices(rng, 32, 1) + structured(rng, 32) + bytes(rng.randrange(256) for _ in range(600)),
                    "mutated": choices(rng, 32, 1) + structured(rng, 48, keep=False) + bytes(400)},
        "checkpoint": {"gpt": choices(rng, 16, 0, 7) + b"\x00\x10\x01\x02\x00" + structured(rng, 64) + small(rng, 1000, 256),
                       "llama": choices(rng, 16, 1, 7) + b"\x01\x20\x01\x01\x00" + structured(rng, 64) + bytes(1000),
                       "trn": choices(rng, 16, 0, 5) + b"\x02\x10\x01\x01\x00" + structured(rng, 64) + bytes(1000),
                       "mutated": choices(rng, 16, 1, 7) + b"\x00\x08\x00\x00\x00" + structured(rng, 96, keep=False)},
        "config": {name: b"\x00" + split_input(text.encode(), b"") for name, text in TINY_CONFIGS.items()},
        "tokenizer": {"bpe": split_input(BPE_FILE.encode(), TEXT), "vocab": split_input(VOCAB_TXT.encode(), TEXT),
                      "spm": split_input(sp_tiny(), TEXT)},
        "tok_bpe": {"file": split_input(BPE_FILE.encode(), TEXT, b"\x00"),
                    "train": split_input(TEXT * 3, TEXT, b"\x01\x02\x00")},
        "tok_maxmatch": {"vocab": split_input(VOCAB_TXT.encode(), TEXT)},
        "tok_byte": {"text": TEXT, "bytes": bytes(range(256))},
        "sentencepiece": {"bpe": split_input(sp_tiny(), TEXT), "bytes": split_input(sp_tiny(True), TEXT + b"\xff\xfe"),
                          "unigram": split_input(sp_tiny(False, 1), TEXT)},
        "gguf": {"v1": gguf_tiny(1), "v2": gguf_tiny(2), "v3": gguf_tiny(3)},
    }
    # regression inputs that are easier made than kept from a fuzzer run (tests/fuzz/README.md)
    for target, files in regressions().items():
        seeds[target].update(files)
    bad_charsmap = split_input(sp_tiny(charsmap=charsmap_bad_offset()), b"a cat")
    seeds["tokenizer"]["regress_charsmap_offset"] = bad_charsmap
    seeds["sentencepiece"]["regress_charsmap_offset"] = bad_charsmap
    # the config seeds with --set lines after the JSON
    seeds["config"]["sets"] = b"\x00" + split_input(TINY_CONFIGS["gpt_groups"].encode(),
                                                    b"model.dim=16\noptim.schedule.kind=constant\ntrain.grad_clip=1")
    for target, files in seeds.items():
        write_all(out, target, files)


def regressions():
    """One input per bug the harnesses found, spelled out byte by byte."""
    pad = lambda b, n: b + bytes(n - len(b))  # noqa: E731
    # shard: loader at cursor 2^62 (vocab 65536, T 16, 1 rank, 1 window) over 256 tokens
    cursor = pad(bytes([6, 15, 0]) + bytes(8) + bytes([1, 15]) + bytes(8) + bytes([0, 0]), 32)
    # h5_tokens: /tokens as uint32, declared 2^62 long and never written
    sparse = pad(bytes([6]), 32) + bytes([0x00, 0x10, 0x01, 0x00, 0xCF, 0xFF, 0x00])
    # teacher: k = 2, vocab 18, 8 rows, offset 1; attribute k stored as an array of 8
    teacher = bytes([0x01, 0x10, 0x08, 0x00, 0x01, 0x0F, 0x00, 0x00])
    array_k = pad(bytes([1]), 32) + teacher[:-1] + bytes([0x00, 0x00, 0x00, 0xC4, 0x01, 0x06, 0x00]) + bytes(9) + bytes(200)
    # teacher: one window of 4 rows at shard position 2^64 - 1
    row_wrap = pad(bytes([1, 0, 3, 0, 19, 0]), 32) + teacher + bytes(12) + bytes(200)
    # checkpoint: the stored seed is 2^64 (seed table index 5)
    seed = pad(bytes([0, 7]), 16) + bytes([0x00, 0x10, 0x01, 0x02, 0x05, 0x00]) + bytes(64)
    # gguf: an integer key stored as the float 1e31
    huge = gguf_file(3, [("general.architecture", 8, "llama"), ("llama.block_count", 12, 1e31)], [])
    return {"gguf": {"regress_u64_of_huge_float": huge},
            "shard": {"regress_loader_cursor_hang": b"\x01" + cursor + bytes([0x01, 0x00, 0x00]) + bytes(512)},
            "h5_tokens": {"regress_sparse_tokens_overflow": sparse},
            "teacher": {"regress_array_attribute": array_k, "regress_window_row_wrap": row_wrap},
            "checkpoint": {"regress_seed_cast": seed}}


# ---------------------------------------------------------------- seeds from the shared data


def read(path, n=None):
    with open(path, "rb") as f:
        return f.read() if n is None else f.read(n)


def gguf_metadata_only(path):
    """The GGUF's metadata (its tokenizer included) with no tensors: a seed of ~10 KB."""
    data = read(path)
    version = struct.unpack_from("<I", data, 4)[0]
    cnt_fmt, cnt_len = ("<I", 4) if version == 1 else ("<Q", 8)
    nkv = struct.unpack_from(cnt_fmt, data, 8 + cnt_len)[0]
    pos = 8 + 2 * cnt_len
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip(t, pos):
        if t == 8:
            n = struct.unpack_from(cnt_fmt, data, pos)[0]
            return pos + cnt_len + n
        if t == 9:
            et = struct.unpack_from("<I", data, pos)[0]
            n = struct.unpack_from(cnt_fmt, data, pos + 4)[0]
            pos += 4 + cnt_len
            for _ in range(n):
                pos = skip(et, pos)
            return pos
        return pos + sizes[t]

    for _ in range(nkv):
        klen = struct.unpack_from(cnt_fmt, data, pos)[0]
        t = struct.unpack_from("<I", data, pos + cnt_len + klen)[0]
        pos = skip(t, pos + cnt_len + klen + 4)
    header = data[:8] + struct.pack(cnt_fmt, 0) + data[8 + cnt_len:8 + 2 * cnt_len]
    return header + data[8 + 2 * cnt_len:pos]


def derived(data_dir, repo, out):
    fw = os.path.join(data_dir, "fineweb")
    seeds = {}
    val = os.path.join(fw, "fineweb_val_000000.bin")
    if os.path.exists(val):
        toks = struct.unpack("<500H", read(val, 1024 + 1000)[1024:])
        seeds["shard"] = {"fineweb_head": b"\x00" + shard_bin(list(toks))}
    model = os.path.join(fw, "fineweb_1024_bpe.model")
    docs = os.path.join(fw, "fineweb_docs200.jsonl")
    text = read(docs, 3000)[:2000] if os.path.exists(docs) else TEXT
    if os.path.exists(model):
        seeds["sentencepiece"] = {"fineweb_sp1024": split_input(read(model), text)}
        seeds["tokenizer"] = {"fineweb_sp1024": split_input(read(model), text)}
    vocab = os.path.join(fw, "fineweb_1024_bpe.vocab")
    if os.path.exists(vocab):
        words = b"\n".join(line.split(b"\t")[0] for line in read(vocab).splitlines())
        seeds["tok_maxmatch"] = {"fineweb_vocab": split_input(words, text)}
    shakespeare = os.path.join(data_dir, "text", "tinyshakespeare.txt")
    if os.path.exists(shakespeare):
        seeds["tok_bpe"] = {"train_shakespeare": split_input(read(shakespeare, 4000), text, b"\x01\x0f\xa0")}
    gguf = os.path.join(data_dir, "teacher", "stories260K-f32.gguf")
    if os.path.exists(gguf):
        seeds["gguf"] = {"stories260K_metadata": gguf_metadata_only(gguf)}
    configs = {}
    for name in sorted(glob.glob(os.path.join(repo, "experiments", "*", "*.json"))):
        configs[os.path.basename(name)[:-5]] = b"\x00" + split_input(read(name), b"")
    seeds["config"] = configs
    for target, files in seeds.items():
        write_all(out, target, files)


def write_all(out, target, files):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    for name, blob in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(blob)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--derive", metavar="DATA")
    ap.add_argument("--repo", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    a = ap.parse_args()
    if a.derive:
        derived(a.derive, a.repo, a.out)
    else:
        synthetic(a.out)


if __name__ == "__main__":
    main()
