#!/usr/bin/env bash
# Times ropescale beside llama.cpp on the same GGUF files, same token ids, same
# windows and threads, runs interleaved pair by pair, and prints the ratios
# (ropescale speed ÷ llama.cpp speed) and whether the perplexities agree.
#
# llama.cpp is built from the tree vendored in the pinned llama-cpp-python
# source distribution on PyPI (nothing is fetched from elsewhere) into
# build-llamacpp/ (~8 minutes on 2 cores, once). Needs scripts/build.sh first.
#
#   scripts/bench-llamacpp.sh                 the full comparison (~15 minutes)
#   scripts/bench-llamacpp.sh --quick         one repeat, fewer shapes (a smoke run)
#   scripts/bench-llamacpp.sh --json FILE     also write every measurement as JSON
#   scripts/bench-llamacpp.sh --no-build …    skip (loudly) instead of building llama.cpp when it is absent
# Any other flag is passed to scripts/bench_llamacpp.py (see its --help).
#
# Not part of the tests: when llama.cpp cannot be built (no network for PyPI,
# no compiler) it says so loudly and exits 0, so CI stays green without it.
set -uo pipefail
cd "$(dirname "$0")/.."
LLAMA_CPP_PYTHON="0.3.36"
dir=build-llamacpp
bin="$dir/build/bin"

if [[ ! -x build/ropescale ]]; then
  echo "bench-llamacpp: build/ropescale is missing; run scripts/build.sh first" >&2
  exit 1
fi

no_build=0
if [[ "${1:-}" == "--no-build" ]]; then no_build=1; shift; fi

tools=(llama-perplexity llama-bench llama-tokenize)
have_tools() { for t in "${tools[@]}"; do [[ -x "$bin/$t" ]] || return 1; done; }

if ! have_tools && [[ $no_build == 1 ]]; then
  echo "bench-llamacpp: SKIPPED — no llama.cpp build in $bin (scripts/bench-llamacpp.sh without --no-build makes one)" >&2
  exit 0
fi
if ! have_tools; then
  echo "bench-llamacpp: building llama.cpp (llama-cpp-python $LLAMA_CPP_PYTHON sdist from PyPI) in $dir/ (~8 minutes)" >&2
  mkdir -p "$dir"
  src="$dir/llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp"
  if [[ ! -f "$src/CMakeLists.txt" ]]; then
    python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
        "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$dir" &&
      tar xzf "$dir/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz" -C "$dir" || {
      echo "bench-llamacpp: SKIPPED — could not download llama-cpp-python $LLAMA_CPP_PYTHON from PyPI" >&2
      exit 0
    }
  fi
  # -march=native (GGML_NATIVE) is llama.cpp's own best build for this CPU.
  cmake -S "$src" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON >/dev/null &&
    cmake --build "$dir/build" -j "$(nproc)" --target "${tools[@]}" >/dev/null || {
    echo "bench-llamacpp: SKIPPED — llama.cpp did not build (see $dir/build)" >&2
    exit 0
  }
fi

[[ -f build/data/kjv_heldout.txt ]] || scripts/kjv-text.sh
exec python3 scripts/bench_llamacpp.py --ropescale build/ropescale --llamacpp-bin "$bin" \
  --llamacpp-version "llama-cpp-python $LLAMA_CPP_PYTHON" "$@"
