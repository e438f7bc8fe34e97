#!/usr/bin/env bash
# Creates .venv-oracle with Hugging Face transformers + torch (the oracle for
# ropescale's frequencies) and llama.cpp's gguf package (the oracle for the
# GGUF files ropescale writes). Test-only: the C++ core
# never needs Python. Pinned so results are reproducible.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV="${ROPESCALE_ORACLE_VENV:-.venv-oracle}"
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import torch, transformers, gguf" 2>/dev/null; then
  exit 0
fi
echo "ropescale: creating $VENV (transformers + torch, ~4 GB, a few minutes)" >&2
python3 -m venv "$VENV" &&
  "$VENV/bin/pip" install -q --disable-pip-version-check "transformers==5.23.0" "torch==2.15.0" "gguf==0.19.0" numpy ||
  { echo "ropescale: WARNING: could not install the HF oracle packages; the hf_oracle test will be SKIPPED" >&2; exit 0; }
