#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing, builds everything, runs
# every test under ctest (GPU tests on whatever Vulkan device there is, lavapipe on a machine without
# a GPU, always under the validation layer), then the fuzz targets briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
bash tools/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 1200
if [ -f fuzz/run.sh ]; then
  bash fuzz/run.sh "${VKLLM_FUZZ_SECONDS:-60}"
fi
