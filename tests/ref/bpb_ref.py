"""Byte counting for val_bpb: tern's totals on both FineWeb shards equal the official
parameter-golf rule (train_gpt.py build_sentencepiece_luts / eval_val), rebuilt here with the
sentencepiece Python module and numpy. Integers: must be identical."""
import json
import os
import subprocess
import sys

import numpy as np

DATA = os.environ.get("TERN_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
BUILD = os.environ.get("TERN_BUILD", "build")
FW = os.path.join(DATA, "fineweb")
MODEL = os.path.join(FW, "fineweb_1024_bpe.model")
if not os.path.exists(MODEL):
    print(f"SKIP: {MODEL} not found (set TERN_DATA)")
    sys.exit(0)
import sentencepiece as spm  # noqa: E402  (only needed when the data is present)

sp = spm.SentencePieceProcessor(model_file=MODEL)
V = sp.vocab_size()
base = np.zeros(V, dtype=np.int64)
lead = np.zeros(V, dtype=bool)
boundary = np.ones(V, dtype=bool)
for i in range(V):
    if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
        continue
    boundary[i] = False
    if sp.is_byte(i):
        base[i] = 1
        continue
    piece = sp.id_to_piece(i)
    if piece.startswith("\u2581"):
        lead[i] = True
        piece = piece[1:]
    base[i] = len(piece.encode("utf-8"))

T = 1024
failures = 0
for name in ("fineweb_train_000000.bin", "fineweb_val_000000.bin"):
    path = os.path.join(FW, name)
    header = np.fromfile(path, dtype="<i4", count=256)
    toks = np.fromfile(path, dtype="<u2", offset=1024).astype(np.int64)
    assert header[0] == 20240520 and len(toks) == header[2]
    prev, tgt = toks[:-1], toks[1:]
    pair = int((base[tgt] + (lead[tgt] & ~boundary[prev])).sum())
    usable = ((len(toks) - 1) // T) * T
    vp, vt = toks[:usable], toks[1:usable + 1]
    val = int((base[vt] + (lead[vt] & ~boundary[vp])).sum())
    out = subprocess.run([os.path.join(BUILD, "tests", "bpb_count"), MODEL, path, str(T)], capture_output=True, text=True)
    if out.returncode:
        print(out.stderr)
        sys.exit(1)
    got = json.loads(out.stdout)
    ok = got["pair_bytes"] == pair and got["val_bytes"] == val and got["val_windows"] == usable // T
    print(f"  {name}: {len(toks)} tokens; bytes over all pairs tern {got['pair_bytes']:.0f} ref {pair}; "
          f"over {usable // T} val windows tern {got['val_bytes']:.0f} ref {val}  {'ok' if ok else 'FAIL'}")
    failures += not ok
print("bpb_ref:", "FAILED" if failures else "all byte counts identical")
sys.exit(1 if failures else 0)
