#!/usr/bin/env bash
# The project's test command (README, .ci/run). In order:
#  1. installs what is missing (tools/setup.sh);
#  2. builds everything (gcc) and runs every test under ctest: GPU tests on whatever Vulkan device
#     there is (lavapipe on a machine without a GPU), always under the Khronos validation layer with
#     synchronization validation on (ctest sets VKLLM_VALIDATE=1; runtime/device.c enables
#     VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT whenever validation is on), and a
#     test fails on any validation message;
#  3. builds again with clang, AddressSanitizer and UndefinedBehaviorSanitizer (-DVKLLM_SANITIZE=ON,
#     build-san/, benchmarks left out) and runs the whole test suite a second time, validation still
#     on; any sanitizer report (UB aborts: -fno-sanitize-recover=all; leaks at exit under
#     LeakSanitizer) fails its test. Third-party leaks (Vulkan loader, lavapipe/LLVM, validation
#     layer) are suppressed by library name only (tests/sanitize/lsan.supp, see
#     tests/sanitize/nodlclose.c for why the libraries are kept loaded);
#  4. runs each fuzz target (GGUF reader, tokenizer, HDF5 fixture reader) for 60 s.
# Environment: VKLLM_FUZZ_SECONDS (per target, default 60), VKLLM_SANITIZE_PASS=0 skips step 3,
#              VKLLM_TEST_JOBS (parallel builds and tests, default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${VKLLM_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
t_start=$SECONDS
times=()
failed=()
# phase NAME COMMAND...: runs it and remembers how long it took and whether it failed. A failed test
# phase does not stop the later ones (one CI run shows every problem); the script fails at the end.
# Setup and builds are fatal: nothing after them could run.
phase() {
  local name=$1 t0=$SECONDS rc=0
  shift
  echo "=== tools/test.sh: $name"
  "$@" || rc=$?
  times+=("$(printf '%-28s %5d s%s' "$name" $((SECONDS - t0)) "$([ $rc -eq 0 ] || echo "  FAILED (exit $rc)")")")
  if [ $rc -ne 0 ]; then
    failed+=("$name")
    case $name in setup|build*) echo "=== tools/test.sh: $name failed"; printf '  %s\n' "${times[@]}"; exit $rc ;; esac
  fi
  return 0
}

phase "setup" bash tools/setup.sh
phase "build (gcc)" bash -c "cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build build -j$jobs"
phase "ctest (validation + sync)" ctest --test-dir build --output-on-failure -j"$jobs" --timeout 1200

if [ "${VKLLM_SANITIZE_PASS:-1}" != 0 ]; then
  san=$root/build-san
  phase "build (clang asan+ubsan)" bash -c "cmake -S . -B '$san' -DCMAKE_C_COMPILER=clang -DVKLLM_SANITIZE=ON \
      -DVKLLM_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build '$san' -j$jobs &&
      cc -shared -fPIC -O2 -o '$san/libnodlclose.so' tests/sanitize/nodlclose.c"
  # halt_on_error/abort: a report ends the test with a failure; detect_leaks: LeakSanitizer at exit
  phase "ctest (asan+ubsan)" env LD_PRELOAD="$san/libnodlclose.so" \
      ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=0:strict_string_checks=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      LSAN_OPTIONS="suppressions=$root/tests/sanitize/lsan.supp:print_suppressions=0" \
      ctest --test-dir "$san" --output-on-failure -j"$jobs" --timeout 1800 -E '^test_install$'
  # test_install is left out here: it builds consumers of the installed library with plain flags,
  # which cannot link a sanitized libvkllm (undefined __asan_*); pass 1 covers the packaging.
fi

if [ -f fuzz/run.sh ]; then
  for target in gguf tokenizer fixture; do
    if grep -q "$target" fuzz/run.sh; then
      phase "fuzz $target" bash fuzz/run.sh "${VKLLM_FUZZ_SECONDS:-60}" "$target"
    fi
  done
fi

printf '  %s\n' "${times[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "=== tools/test.sh: FAILED: ${failed[*]} ($((SECONDS - t_start)) s)"
  exit 1
fi
echo "=== tools/test.sh: all passed in $((SECONDS - t_start)) s"
