#!/usr/bin/env bash
# Runs every test: the Release build's unit, CLI and HF-oracle tests, then the
# same suite under ASan+UBSan (clang) plus the libFuzzer targets.
#   ROPESCALE_SKIP_ORACLE=1   do not install the HF oracle (its test then skips loudly)
#   ROPESCALE_SKIP_SANITIZE=1 skip the sanitizer/fuzz pass
#   ROPESCALE_FUZZ_SECONDS=N  seconds per fuzzer (default 45)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
[[ "${ROPESCALE_SKIP_ORACLE:-0}" == 1 ]] || scripts/oracle-venv.sh

echo "== Release build and tests" >&2
scripts/build.sh
ctest --test-dir build --output-on-failure -j 2
# Speed beside llama.cpp is a benchmark, not a test: a one-repeat smoke run when llama.cpp has been
# built here (scripts/bench-llamacpp.sh builds it), checking that both perplexities still agree.
scripts/bench-llamacpp.sh --no-build --quick

if [[ "${ROPESCALE_SKIP_SANITIZE:-0}" != 1 ]]; then
  echo "== ASan+UBSan build, tests and fuzzers" >&2
  scripts/build.sh --sanitize
  # The 8x-context runtime test (4096 tokens x 8 methods) and the Chromium
  # report check run in the Release pass above; under ASan they would take
  # many minutes and test nothing new.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j 2 -E '^(hf_oracle|gguf_oracle|hf_model_oracle|llamacpp_oracle|report_render|Stories260K.EveryMethodRunsAt8xWithoutNaN)$'
fi
