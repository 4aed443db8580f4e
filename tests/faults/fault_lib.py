"""The CLI fault-injection suite's shared checks (tests/faults/*.py, ctest label `faults`).

Every case runs a tern / tern-run command on damaged or hostile input and asserts what the
project promises for bad input (DESIGN.md, Errors):
  - exit status in 1..127 (not a signal, not 0);
  - an error line naming the file or key (`names`: substrings the stderr must contain);
  - no sanitizer report (the suite runs again under ASan + UBSan in CI);
  - a previous run folder byte-for-byte intact (snapshot() before, intact() after).
Each faults_<area>.py (one ctest each) builds its own small inputs in a temporary folder and ends with
checks.finish(name)."""
import hashlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from e2e_common import ENV, Checks, synthetic_language, write_shard  # noqa: E402,F401

BIN_DIR = os.environ.get("TERN_BIN", "build/bin")
TERN = os.path.join(BIN_DIR, "tern")
TERN_RUN = os.path.join(BIN_DIR, "tern-run")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


def run(cmd, timeout=120, env=None, stdin=None, cwd=None):
    """Runs a command list; a hang past `timeout` is reported as returncode -9 with a note."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or ENV,
                              input=stdin, cwd=cwd, errors="replace")
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return subprocess.CompletedProcess(cmd, -9, out, err + f"\n[faults: timed out after {timeout}s]")


def tern(*args, **kw):
    return run([TERN, *map(str, args)], **kw)


def tern_run(*args, **kw):
    return run([TERN_RUN, *map(str, args)], **kw)


def error_lines(r):
    """The stderr lines that are not progress or informational output."""
    return [ln for ln in r.stderr.splitlines() if ln.strip()]


def expect_error(checks, r, what, names=(), allow_lines=None):
    """A clean failure: 1 <= status <= 127, no sanitizer report, every string of `names` in
    stderr (the file or key the error must name). allow_lines: the most stderr lines accepted
    (None = any: commands that printed progress before failing)."""
    err = r.stderr
    ok_status = 1 <= r.returncode <= 127
    san = [m for m in SANITIZER_MARKS if m in err]
    missing = [n for n in names if n not in err]
    nlines = len(error_lines(r))
    ok_lines = allow_lines is None or nlines <= allow_lines
    good = ok_status and not san and not missing and ok_lines
    detail = ""
    if not good:
        tail = err.strip().splitlines()[-3:]
        detail = f" [status {r.returncode}; sanitizer {san}; missing {missing}; {nlines} lines; stderr tail {tail}]"
    return checks(good, what + detail)


def expect_ok(checks, r, what):
    san = [m for m in SANITIZER_MARKS if m in r.stderr]
    good = r.returncode == 0 and not san
    return checks(good, what + ("" if good else f" [status {r.returncode}; stderr tail {r.stderr.strip().splitlines()[-3:]}]"))


def snapshot(folder):
    """{relative path: sha256} of every file under folder."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def intact(checks, folder, before, what):
    after = snapshot(folder)
    changed = sorted(k for k in before if after.get(k) != before[k])
    return checks(not changed, f"{what}: {folder} unchanged" + (f" [changed/missing: {changed[:5]}]" if changed else ""))
