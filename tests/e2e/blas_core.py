"""The OpenBLAS kernels tern runs on (kernels/blas_core.c), through the binary: with
OPENBLAS_CORETYPE unset, the core in use is at least what the CPU's instructions allow (tern
re-executes itself with a better core when OpenBLAS chose one below the CPU); a core or a wait
policy the user set is kept; TERN_REEXEC stops a second re-execution; a training run names the
core in its header line and summary.json."""
import json
import os
import tempfile

from e2e_common import ENV, Checks, summary, synthetic_language, tern, write_shard

check = Checks()
# OpenBLAS core names by the widest instructions their float32 kernels use (driver/others/dynamic.c)
AVX512_CORES = {"SkylakeX", "Cooperlake", "SapphireRapids"}
AVX2_CORES = {"Haswell", "Zen", "Excavator"} | AVX512_CORES
BARE = {k: v for k, v in ENV.items() if k not in ("OPENBLAS_CORETYPE", "OMP_WAIT_POLICY", "TERN_REEXEC", "TERN_BLAS_CORE_FROM")}


def info(**extra):
    r = tern("info", "--json", env=dict(BARE, **extra))
    return json.loads(r.stdout) if r.returncode == 0 else {"err": r.stderr}


print("the core follows the CPU")
auto = info()
isa, core = auto.get("isa"), auto.get("blas_core")
print(f"  cpu {auto.get('cpu')} (family {auto.get('cpu_family')} model {auto.get('cpu_model')}), {isa}: core {auto.get('blas_core_origin')}")
want = AVX512_CORES if isa == "AVX-512" else AVX2_CORES if isa == "AVX2" else None
check(want is None or core in want, f"{isa} CPU, OPENBLAS_CORETYPE unset: core {core} uses its instructions")
check(auto.get("omp_wait_policy") == "passive", "OMP_WAIT_POLICY defaults to passive")
origin = auto.get("blas_core_origin", "")
check("OpenBLAS's choice" in origin or "set by tern; OpenBLAS chose" in origin, f"the origin is named: {origin}")

print("OpenBLAS choosing generic kernels (Prescott, as on Intel Emerald Rapids) is corrected")
shim = os.environ.get("TERN_FAKE_CORENAME", "")
if isa in ("AVX2", "AVX-512") and os.path.exists(shim):
    o = info(LD_PRELOAD=shim)
    fixed = "SkylakeX" if isa == "AVX-512" else "Haswell"
    check(o.get("blas_core") == fixed and o.get("blas_core_origin") == f"{fixed} (set by tern; OpenBLAS chose Prescott)",
          f"{isa} CPU, OpenBLAS said Prescott: {o.get('blas_core_origin', o.get('err'))}")
    o = info(LD_PRELOAD=shim, OPENBLAS_CORETYPE="Prescott")
    check(o.get("blas_core") == "Prescott", f"... unless the user asked for it: {o.get('blas_core_origin', o.get('err'))}")
else:
    print(f"  SKIP: {'no AVX2 on this CPU' if shim else 'no fake_corename shim built'}")

print("the user's settings win")
for forced in ("Prescott", "Haswell"):
    o = info(OPENBLAS_CORETYPE=forced)
    check(o.get("blas_core") == forced and f"OPENBLAS_CORETYPE={forced}" in o.get("blas_core_origin", ""),
          f"OPENBLAS_CORETYPE={forced} -> {o.get('blas_core_origin', o.get('err'))}")
o = info(OMP_WAIT_POLICY="active")
check(o.get("omp_wait_policy") == "active" and o.get("blas_core") == core,
      f"OMP_WAIT_POLICY=active kept, core still {o.get('blas_core')}")
o = info(TERN_REEXEC="1")
check(o.get("omp_wait_policy") == "" and "OpenBLAS's choice" in o.get("blas_core_origin", ""),
      "TERN_REEXEC set: no re-execution (no second exec after the first)")

print("a run names its core")
d = tempfile.mkdtemp(prefix="tern_blas_")
seq = synthetic_language(6000)
write_shard(os.path.join(d, "syn_train_000000.bin"), seq[:5000])
write_shard(os.path.join(d, "syn_val_000000.bin"), seq[5000:])
cfg = {
    "name": "r", "out_dir": os.path.join(d, "runs"), "seed": 1, "threads": 1,
    "model": {"arch": "gpt", "vocab_size": 64, "layers": 1, "dim": 16, "heads": 2, "kv_heads": 1},
    "data": {"train": os.path.join(d, "syn_train_*.bin"), "val": os.path.join(d, "syn_val_*.bin"), "seq_len": 16},
    "train": {"batch_tokens": 64, "micro_batch": 4, "max_steps": 2, "val_every": 0, "eval_at_end": False},
}
with open(os.path.join(d, "cfg.json"), "w") as f:
    json.dump(cfg, f)
r = tern("train", os.path.join(d, "cfg.json"), "--json", env=BARE)
s = summary(r)
header = [ln for ln in r.stderr.splitlines() if ln.startswith("tern train:")]
check(s.get("blas_core") == core, f"summary blas_core {s.get('blas_core', s.get('err'))}")
check(bool(header) and f"BLAS kernels {core}" in header[0], f"header: {header[0] if header else r.stderr[-300:]}")
with open(os.path.join(d, "runs", "r", "summary.json")) as f:
    check(json.load(f).get("blas_core") == core, "summary.json on disk names it too")
check.finish("e2e_blas_core")
