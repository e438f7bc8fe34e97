#!/usr/bin/env bash
# Rebuilds the built-in default model, models/ropescale-kjv-256.gguf, from text
# any fresh Debian machine can get: the King James Bible (Debian's bible-kjv)
# plus ropescale's synthetic retrieval documents (passkey and key-value
# records), byte-level tokens, trained at 256 tokens on 2 CPU cores.
# Deterministic for the same seed and thread count (2).
#   scripts/train-default.sh [--steps N]   (extra flags go to `ropescale train`)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh   # includes bible-kjv
[[ -x build/ropescale ]] || scripts/build.sh
scripts/kjv-text.sh
echo "ropescale: training text build/data/kjv.txt, $(wc -c < build/data/kjv.txt) bytes" >&2
build/ropescale train --text build/data/kjv.txt --out models/ropescale-kjv-256.gguf \
  --ctx 256 --dim 128 --layers 4 --heads 4 --kv-heads 2 --hidden 352 \
  --steps 4500 --batch 8 --lr 3e-3 --min-lr 3e-4 --warmup 100 --weight-decay 0.1 --clip 1 \
  --passkey 0.25 --key-value 0.25 --repeat 0.15 --seed 1 --threads 2 --eval-every 100 --checkpoint-every 500 \
  --log models/ropescale-kjv-256.train.csv "$@"
