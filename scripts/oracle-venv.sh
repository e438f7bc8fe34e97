#!/usr/bin/env bash
# Creates .venv-oracle with the oracles the tests compare ropescale with:
# Hugging Face transformers + torch (frequencies, whole forward pass), the gguf
# package (GGUF files) and llama-cpp-python, i.e. llama.cpp built from source
# by pip (~10 minutes on 2 cores; logits of converted models), and the openai and
# prometheus_client packages (real clients of `ropescale serve`), llama-cpp-python's server extras
# (an endpoint for `eval --endpoint`). Test-only: the C++ core
# never needs Python. Pinned so results are reproducible.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV="${ROPESCALE_ORACLE_VENV:-.venv-oracle}"
if ! { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import torch, transformers, gguf" 2>/dev/null; }; then
  echo "ropescale: creating $VENV (transformers + torch + gguf, ~4 GB, a few minutes)" >&2
  python3 -m venv "$VENV" &&
    "$VENV/bin/pip" install -q --disable-pip-version-check "transformers==5.23.0" "torch==2.15.0" "gguf==0.19.0" numpy ||
    echo "ropescale: WARNING: could not install transformers/torch/gguf; their oracle tests will be SKIPPED" >&2
fi
if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c "import openai, prometheus_client" 2>/dev/null; then
  # Real clients of `ropescale serve`: the official OpenAI client and Prometheus' own text parser.
  "$VENV/bin/pip" install -q --disable-pip-version-check "openai==3.57.0" "prometheus_client==0.26.0" ||
    echo "ropescale: WARNING: could not install openai/prometheus_client; the serve_oracle test will be SKIPPED" >&2
fi
if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "ropescale: building llama-cpp-python from source (~10 minutes on 2 cores)" >&2
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$VENV/bin/pip" install -q --disable-pip-version-check "llama-cpp-python==0.3.36" ||
    echo "ropescale: WARNING: could not build llama-cpp-python; the llamacpp_oracle test will be SKIPPED" >&2
fi
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null &&
  ! "$VENV/bin/python" -c "import uvicorn, fastapi, pydantic_settings, sse_starlette, starlette_context" 2>/dev/null; then
  # llama-cpp-python's OpenAI-compatible server (its [server] extra): an endpoint the evaluation client is tested on.
  "$VENV/bin/pip" install -q --disable-pip-version-check "uvicorn==0.55.0" "fastapi==0.165.0" "pydantic-settings==2.16.3" \
    "sse-starlette==3.7.1" "starlette-context==0.3.6" "PyYAML==6.0.4" ||
    echo "ropescale: WARNING: could not install llama-cpp-python's server extras; endpoint_oracle will skip that server" >&2
fi
exit 0
