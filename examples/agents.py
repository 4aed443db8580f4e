#!/usr/bin/env python3
"""Agents on one shared model through libternrt's C interface (runtime/ternrt.h trt_agent_*), from
Python with ctypes only: the Hybrid-GRU engine's "observe text / act n tokens" calls.

    python3 examples/agents.py MODEL.tern [--lib build/lib/libternrt.so] [--agents 4] [--tokens 32]

The model is loaded once and shared (read-only) by every agent; each agent has its own state,
seed and sampler. Agents run on Python threads (ctypes releases the GIL during the calls, so
they run in parallel). The script also saves one agent's state, lets it go on, restores the
saved state into a new agent and checks both continue with the same text."""
import argparse
import ctypes as C
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))


class AgentOptions(C.Structure):
    _fields_ = [("seed", C.c_uint64), ("threads", C.c_int), ("max_context", C.c_size_t), ("top_p", C.c_float),
                ("repetition_penalty", C.c_float), ("stop_at_eos", C.c_int)]


def load_library(path):
    lib = C.CDLL(path)
    P, E, N = C.c_void_p, C.c_char_p, C.c_size_t
    sig = {
        "trt_model_load": ([C.POINTER(P), C.c_char_p, P, E, N], C.c_int),
        "trt_model_free": ([P], None),
        "trt_agent_new": ([P, C.POINTER(AgentOptions), C.POINTER(P), E, N], C.c_int),
        "trt_agent_free": ([P], None),
        "trt_agent_observe": ([P, C.c_char_p, E, N], C.c_int),
        "trt_agent_act": ([P, N, C.c_float, C.POINTER(C.c_void_p), E, N], C.c_int),
        "trt_agent_state_size": ([P], N),
        "trt_agent_save": ([P, P, N, E, N], C.c_int),
        "trt_agent_restore": ([P, P, N, E, N], C.c_int),
    }
    for name, (args, res) in sig.items():
        f = getattr(lib, name)
        f.argtypes, f.restype = args, res
    libc = C.CDLL(None)
    libc.free.argtypes = [C.c_void_p]
    return lib, libc


class Runtime:
    def __init__(self, lib_path, model_path):
        self.lib, self.libc = load_library(lib_path)
        self.err = C.create_string_buffer(512)
        self.model = C.c_void_p()
        if self.lib.trt_model_load(C.byref(self.model), model_path.encode(), None, self.err, 512):
            raise RuntimeError(self.err.value.decode())

    def close(self):
        self.lib.trt_model_free(self.model)


class Agent:
    """One agent: observe(text), act(n, temperature) -> text, save() -> bytes, restore(bytes)."""

    def __init__(self, rt, seed, **opts):
        self.rt, self.err = rt, C.create_string_buffer(512)
        o = AgentOptions(seed=seed, threads=1, max_context=opts.get("max_context", 0), top_p=opts.get("top_p", 1.0),
                         repetition_penalty=opts.get("repetition_penalty", 1.0), stop_at_eos=0)
        self.h = C.c_void_p()
        self._ok(rt.lib.trt_agent_new(rt.model, C.byref(o), C.byref(self.h), self.err, 512))

    def _ok(self, rc):
        if rc:
            raise RuntimeError(self.err.value.decode())

    def observe(self, text):
        self._ok(self.rt.lib.trt_agent_observe(self.h, text.encode(), self.err, 512))

    def act(self, n, temperature=0.8):
        out = C.c_void_p()
        self._ok(self.rt.lib.trt_agent_act(self.h, n, temperature, C.byref(out), self.err, 512))
        text = C.string_at(out).decode("utf-8", errors="replace")
        self.rt.libc.free(out)
        return text

    def save(self):
        n = self.rt.lib.trt_agent_state_size(self.h)
        buf = C.create_string_buffer(n)
        self._ok(self.rt.lib.trt_agent_save(self.h, buf, n, self.err, 512))
        return buf.raw

    def restore(self, blob):
        self._ok(self.rt.lib.trt_agent_restore(self.h, blob, len(blob), self.err, 512))

    def close(self):
        self.rt.lib.trt_agent_free(self.h)


def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--lib", default=os.path.join(HERE, "..", "build", "lib", "libternrt.so"))
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=32)
    a = ap.parse_args()
    rt = Runtime(a.lib, a.model)
    agents = [Agent(rt, seed=i + 1) for i in range(a.agents)]
    replies = [None] * a.agents

    def run(i):
        agents[i].observe(f"Agent number {i} was asked about the weather. It said")
        replies[i] = agents[i].act(a.tokens, temperature=0.8)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(a.agents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, r in enumerate(replies):
        print(f"agent {i}: {r!r}")
    # save, go on, restore into a new agent: the same continuation
    blob = agents[0].save()
    agents[0].observe(" Then")
    went_on = agents[0].act(a.tokens // 2)
    twin = Agent(rt, seed=99)
    twin.restore(blob)
    twin.observe(" Then")
    again = twin.act(a.tokens // 2)
    print(f"agent 0 state: {len(blob)} bytes; continued {went_on!r}; restored twin {again!r}")
    same = went_on == again
    print("restored agent continues identically:", "yes" if same else "NO")
    print(f"resident memory with {len(agents) + 1} agents: {rss_mib():.1f} MiB (this Python process)")
    for ag in agents + [twin]:
        ag.close()
    rt.close()
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
