#!/usr/bin/env bash
# tokenize.sh — encoding speed, MB/s on one core: `tern tokenizer encode` against the official
# spm_encode, same sp1024 model, same files, same run, both single-threaded and pinned to one
# CPU. Also checks that both print the same ids. Results: experiments/bench/TOKENIZE.md.
#
#   experiments/bench/tokenize.sh            (TERN=path/to/tern, TERN_DATA=..., REPS=3)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TERN=${TERN:-$ROOT/build/bin/tern}
DATA=${TERN_DATA:-$ROOT/../shared/data}
MODEL=$DATA/fineweb/fineweb_1024_bpe.model
SPM=${SPM_ENCODE:-/usr/bin/spm_encode}
REPS=${REPS:-3}
FILES="tinyshakespeare gutenberg brown state_union"

for x in "$TERN" "$SPM" /usr/bin/time; do
  [ -x "$x" ] || { echo "tokenize.sh: $x not found (build tern, install sentencepiece)" >&2; exit 1; }
done
[ -f "$MODEL" ] || { echo "tokenize.sh: $MODEL not found (set TERN_DATA)" >&2; exit 1; }

CORES=$(nproc --all)
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
PIN=""
command -v taskset > /dev/null && PIN="taskset -c 0"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# CPU time (user + sys) and wall time per run, averaged over REPS back-to-back runs timed
# together (finer than /usr/bin/time's 10 ms on one short run); output kept from the last run
measure() { # output file, command...
  local out=$1; shift
  local cmd
  cmd=$(printf '%q ' "$@")
  /usr/bin/time -f "%e %U %S" -o "$TMP/t" $PIN bash -c "for _ in \$(seq $REPS); do $cmd > '$out'; done"
  read -r wall user sys < "$TMP/t"
  echo "$(echo "($user + $sys) / $REPS" | bc -l) $(echo "$wall / $REPS" | bc -l)"
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $CORES cores; $(date -u +%Y-%m-%d)"
echo "spm_encode: $($SPM --version 2>&1 | head -1); mean of $REPS runs pinned to CPU 0; MB/s = bytes / CPU seconds (user+sys)"
printf '\n| %-16s | %7s | %9s | %9s | %9s | %9s | %7s | %-9s |\n' file MB "spm s" "spm MB/s" "tern s" "tern MB/s" speedup "same ids"
printf '| %-16s | %7s | %9s | %9s | %9s | %9s | %7s | %-9s |\n' ---------------- ------- --------- --------- --------- --------- ------- ---------
tot_bytes=0; tot_spm=0; tot_tern=0; walls=""
for f in $FILES; do
  in=$DATA/text/$f.txt
  bytes=$(stat -c %s "$in")
  read -r spm_cpu spm_wall < <(measure "$TMP/spm.ids" "$SPM" --model="$MODEL" --output_format=id "$in")
  read -r tern_cpu tern_wall < <(measure "$TMP/tern.ids" "$TERN" tokenizer encode "$MODEL" --file "$in" --allow-invalid-utf8)
  same=no; cmp -s "$TMP/spm.ids" "$TMP/tern.ids" && same=yes
  mb=$(echo "$bytes / 1000000" | bc -l)
  printf '| %-16s | %7.2f | %9.3f | %9.2f | %9.3f | %9.2f | %6.1fx | %-9s |\n' "$f" "$mb" "$spm_cpu" \
    "$(echo "$mb / $spm_cpu" | bc -l)" "$tern_cpu" "$(echo "$mb / $tern_cpu" | bc -l)" \
    "$(echo "$spm_cpu / $tern_cpu" | bc -l)" "$same"
  tot_bytes=$((tot_bytes + bytes))
  walls="$walls $f: spm $(printf %.3f "$spm_wall") s, tern $(printf %.3f "$tern_wall") s;"
  tot_spm=$(echo "$tot_spm + $spm_cpu" | bc -l)
  tot_tern=$(echo "$tot_tern + $tern_cpu" | bc -l)
done
mb=$(echo "$tot_bytes / 1000000" | bc -l)
printf '| %-16s | %7.2f | %9.3f | %9.2f | %9.3f | %9.2f | %6.1fx | %-9s |\n' "all four" "$mb" "$tot_spm" \
  "$(echo "$mb / $tot_spm" | bc -l)" "$tot_tern" "$(echo "$mb / $tot_tern" | bc -l)" "$(echo "$tot_spm / $tot_tern" | bc -l)" ""
echo
echo "wall-clock per run:$walls"
