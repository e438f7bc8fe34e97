#!/usr/bin/env bash
# Configures and builds ropescale.
#   scripts/build.sh            Release build in build/
#   scripts/build.sh --sanitize clang ASan+UBSan build with the libFuzzer targets in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--sanitize" ]]; then
  dir=build-asan
  args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DROPESCALE_SANITIZE=ON -DROPESCALE_FUZZ=ON -DROPESCALE_CUDA=OFF
        "-DROPESCALE_FUZZ_SECONDS=${ROPESCALE_FUZZ_SECONDS:-45}")
else
  dir=build
  args=(-DCMAKE_BUILD_TYPE=Release)
fi
cmake -S . -B "$dir" -G Ninja "${args[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
