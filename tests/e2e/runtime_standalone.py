"""The runtime builds as its own CMake project (`cmake -S runtime`), outside the tern build:
configure and build it in a scratch folder, check that nothing of the framework's dependencies
(BLAS, HDF5, cJSON) was looked for or linked, and that the binary runs."""
import os
import shutil
import subprocess
import sys
from e2e_common import Checks

src, out = sys.argv[1], sys.argv[2]
check = Checks()


shutil.rmtree(out, ignore_errors=True)
# Debug: the point is that it builds, and -O0 compiles fastest on two cores
r = subprocess.run(["cmake", "-S", src, "-B", out, "-DCMAKE_BUILD_TYPE=Debug"], capture_output=True, text=True)
check(r.returncode == 0, "cmake -S runtime configures alone" + ("" if r.returncode == 0 else "\n" + r.stdout + r.stderr))
r = subprocess.run(["cmake", "--build", out, "-j2"], capture_output=True, text=True)
check(r.returncode == 0, "and builds" + ("" if r.returncode == 0 else "\n" + r.stdout[-3000:] + r.stderr[-3000:]))
cache = open(os.path.join(out, "CMakeCache.txt")).read()
bad = [k for k in ("HDF5", "BLAS", "CJSON", "cJSON", "MPI_C") if k in cache]
check(not bad, f"no BLAS / HDF5 / cJSON / MPI in its CMake cache {bad}")
exe = os.path.join(out, "bin", "tern-run")
r = subprocess.run([exe, "--help"], capture_output=True, text=True)
check(r.returncode == 0 and "generate" in r.stdout, "tern-run --help runs")
libs = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
names = sorted({line.split()[0] for line in libs.splitlines() if line.strip()})
extra = [n for n in names if not any(k in n for k in ("linux-vdso", "libc.so", "libm.so", "libzstd", "libgomp", "ld-linux", "libomp"))]
check(not extra, f"linked against libc, libm, zstd and OpenMP only: {names}")
sys.exit(1 if check.failures else 0)
