#!/usr/bin/env python3
"""The layering check (run by .ci/run): every `#include "layer/file.h"` in a layer's sources must
follow DESIGN.md's arrows, read transitively (a layer may use what the layers it uses use):

    kernels   -> (nothing of this repo)
    autodiff  -> kernels
    model     -> autodiff
    optim     -> autodiff, kernels
    data      -> kernels
    export    -> model (the writer packs a model's parameters); format.h is the runtime's contract
    train     -> all of the above
    runtime   -> export/format.h and the framework files it compiles, listed in
                 runtime/sources.cmake (TERNRT_SHARED_SOURCES / _HEADERS) - nothing else

tests/ and experiments/ may include anything. Prints one line per violation and exits 1 when
there is any; `--list` prints the allowed arrows."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USES = {
    "kernels": [],
    "autodiff": ["kernels"],
    "model": ["autodiff"],
    "optim": ["autodiff", "kernels"],
    "data": ["kernels"],
    "export": ["model"],
    "train": ["kernels", "autodiff", "model", "optim", "data", "export"],
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([^"]+)"', re.M)


def closure(layer):
    seen, todo = set(), [layer]
    while todo:
        for u in USES.get(todo.pop(), []):
            if u not in seen:
                seen.add(u)
                todo.append(u)
    return seen | {layer}


def runtime_files():
    """The repo files runtime/ may include: export/format.h plus sources.cmake's shared lists."""
    text = open(os.path.join(ROOT, "runtime", "sources.cmake")).read()
    files = set(re.findall(r"\$\{TERNRT_ROOT\}/((?:data|kernels|export)/[\w.]+)", text))
    return files | {"export/format.h"}


def sources(layer):
    for base, _, names in os.walk(os.path.join(ROOT, layer)):
        for n in sorted(names):
            if n.endswith((".c", ".h")):
                yield os.path.join(base, n)


def main():
    if "--list" in sys.argv:
        for layer in USES:
            print(f"{layer:9s} -> {', '.join(sorted(closure(layer) - {layer})) or '(none)'}")
        print(f"runtime   -> {', '.join(sorted(runtime_files()))}")
        return 0
    bad = []
    rt_allowed = runtime_files()
    for layer in list(USES) + ["runtime"]:
        allowed = closure(layer) if layer != "runtime" else {"runtime"}
        for path in sources(layer):
            rel = os.path.relpath(path, ROOT)
            for m in INCLUDE.finditer(open(path, errors="replace").read()):
                target = f"{m.group(1)}/{m.group(2)}"
                if m.group(1) in allowed or (layer == "runtime" and target in rt_allowed):
                    continue
                if m.group(1) not in USES and m.group(1) != "runtime":
                    continue  # a generated header (tern_code_bytes.h) or a system-like path
                bad.append(f"{rel}: includes {target}, but {layer}/ may not use {m.group(1)}/ (DESIGN.md layers)")
    # the runtime's shared framework files must themselves stay inside that list
    for f in sorted(rt_allowed):
        path = os.path.join(ROOT, f)
        if not os.path.exists(path):
            bad.append(f"runtime/sources.cmake lists {f}, which does not exist")
            continue
        for m in INCLUDE.finditer(open(path, errors="replace").read()):
            target = f"{m.group(1)}/{m.group(2)}"
            if target not in rt_allowed:
                bad.append(f"{f}: compiled into the runtime but includes {target}, which the runtime does not build")
    for line in bad:
        print(line)
    print(f"layering check: {'FAILED' if bad else 'ok'} ({len(bad)} violations)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
