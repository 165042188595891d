#!/bin/sh
# Fuzz the GGUF reader, the tokenizer or the HDF5 fixture reader for a given number of seconds:
#   fuzz/run.sh <seconds> [gguf|tokenizer|fixture]   (default 60 s, gguf)
# Configures its own clang build dir (fuzz/ alone, so nothing else in the tree needs to build), runs
# libFuzzer with ASan+UBSan on a scratch copy of fuzz/corpus/<target>, and exits non-zero on any finding
# (crash, sanitizer report, leak, timeout or out-of-memory); the reproducer lands in the build dir.
# Needs clang and its fuzzer runtime (Debian 12: clang-14 libclang-rt-14-dev).
# Environment: VKLLM_FUZZ_BUILD (build dir, default build-fuzz), CC (default clang),
#              VKLLM_FUZZ_ARGS (extra libFuzzer flags, e.g. -jobs=4 -workers=4).
set -eu
secs=${1:-60}
target=${2:-gguf}
case $secs in ''|*[!0-9]*) echo "usage: fuzz/run.sh <seconds> [gguf|tokenizer|fixture]" >&2; exit 2 ;; esac
case $target in gguf|tokenizer|fixture) ;; *) echo "usage: fuzz/run.sh <seconds> [gguf|tokenizer|fixture]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VKLLM_FUZZ_BUILD:-$root/build-fuzz}
cc=${CC:-clang}
command -v "$cc" >/dev/null 2>&1 || { echo "fuzz/run.sh: $cc not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

cmake -S "$root/fuzz" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target "fuzz_$target" -j "$(nproc 2>/dev/null || echo 2)"

work=$build/corpus-$target
art=$build/artifacts/
mkdir -p "$work" "$art"
echo "fuzz/run.sh: fuzzing $target for $secs s (corpus $work, findings in $art)"
# new inputs go to the scratch corpus; the committed seeds are read only
case $target in
  gguf) extra="-dict=$root/fuzz/gguf.dict -max_len=65536" ;;
  fixture) extra="-max_len=1024" ;;
  *) extra="-max_len=4096" ;;
esac
# shellcheck disable=SC2086
"$build/fuzz_$target" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 $extra \
    -artifact_prefix="$art" -print_final_stats=1 \
    ${VKLLM_FUZZ_ARGS:-} "$work" "$root/fuzz/corpus/$target"
