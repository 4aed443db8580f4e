"""Prints experiments/hgru/run.sh's results.jsonl as the README's table."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print("| model | weights | params | val_bpb | train tok/s (2 threads) |")
print("| --- | --- | --- | --- | --- |")
for r in rows:
    name, _, q = r["run"].rpartition("-")
    bpb = f"{r['val_bpb']:.4f}" if "val_bpb" in r else "-"
    print(f"| {name} | {q} | {r.get('params', 0):,} | {bpb} | {r['tok_per_s']:,.0f} |")
