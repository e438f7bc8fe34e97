#!/usr/bin/env bash
# Times ropescale beside PyTorch + Hugging Face transformers on this CPU: perplexity
# at 256- and 2048-token windows (sdpa and eager attention) and training the default
# model's shape (eager and torch.compile). Uses the oracle virtualenv
# (scripts/oracle-venv.sh creates it); needs scripts/build.sh first.
#   scripts/bench-pytorch.sh [--repeats N] [--threads 1,2] [--json FILE] …   (see --help)
# Not part of the tests: without the virtualenv it says so loudly and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV="${ROPESCALE_ORACLE_VENV:-.venv-oracle}"
if [[ ! -x build/ropescale ]]; then
  echo "bench-pytorch: build/ropescale is missing; run scripts/build.sh first" >&2
  exit 1
fi
if ! "$VENV/bin/python" -c "import torch, transformers" 2>/dev/null; then
  echo "bench-pytorch: SKIPPED — $VENV has no torch + transformers (run scripts/oracle-venv.sh)" >&2
  exit 0
fi
[[ -f build/data/kjv_heldout.txt ]] || scripts/kjv-text.sh
exec "$VENV/bin/python" scripts/bench_pytorch.py --ropescale build/ropescale "$@"
