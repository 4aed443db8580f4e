"""The closing table of torch_gdn.py and torch_mlstm.py: issue 13's two speed ratios for every
measured form, from the figures of one run, with the machine and its load beside them."""
import os
import platform


def machine_line(threads, torch_version):
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"machine: {cpu}, {os.cpu_count()} CPUs; {threads} threads; torch {torch_version}; "
            f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset: tern picks)')}; load {load()}")


def load():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def print_table(title, rows, goal_rec=5.0, goal_torch=3.0):
    """rows: (what, tern chunked ms, tern recurrent ms, torch peer ms, which peer)."""
    print(f"\n{title}  (fwd+bwd ms, best of N; goals: chunked >= {goal_rec:g}x recurrent, >= {goal_torch:g}x PyTorch)")
    print("| what | tern chunked | tern recurrent | PyTorch peer | chunked vs recurrent | vs PyTorch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for what, ch, rec, pt, peer in rows:
        r1, r2 = rec / ch, pt / ch
        print(f"| {what} | {ch:.1f} | {rec:.1f} | {pt:.1f} ({peer}) | {r1:.2f}x {'met' if r1 >= goal_rec else 'NOT met'} "
              f"| {r2:.2f}x {'met' if r2 >= goal_torch else 'NOT met'} |")
    print(f"load after: {load()}", flush=True)
