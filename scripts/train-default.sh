#!/usr/bin/env bash
# Rebuilds the built-in default model, models/ropescale-kjv-256.gguf, from text
# any fresh Debian machine can get: the King James Bible (Debian's bible-kjv)
# plus ropescale's synthetic documents, byte-level tokens, trained at 256
# tokens on 2 CPU cores (about 21 minutes). Deterministic for the same seed and
# thread count (2).
#
# A curriculum of four `ropescale train` runs, each starting from the last
# (models/README.md has the measurements behind it):
#   1. copy       1500 steps on copy documents ("Keys: " and distinct characters
#                 repeated back to back). A model this small trained on mixed
#                 data never forms the copy ("induction") circuit retrieval is
#                 made of; on these it forms at about step 700 (loss 3.9 → 0.48).
#   2. far copy    600 steps on copy documents, half of them with up to ~200
#                 tokens of text before each copy: copies across the window.
#   3. retrieval  2700 steps on KJV text (25 %) + passkey (30 %), key-value (25 %)
#                 and copy (20 %) documents: the pass key's last three digits.
#   4. recall     2000 steps, lr back up to 1e-3, on text (30 %) + passkey (45 %),
#                 recall (20 %: name–code records recalled a dozen times) and
#                 key-value (5 %) documents: the first two digits, i.e. exact
#                 greedy answers.
#   scripts/train-default.sh   (extra flags go to the last run)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh   # includes bible-kjv
[[ -x build/ropescale ]] || scripts/build.sh
scripts/kjv-text.sh
echo "ropescale: training text build/data/kjv.txt, $(wc -c < build/data/kjv.txt) bytes" >&2
stages=build/default-model
mkdir -p "$stages"
common=(--text build/data/kjv.txt --ctx 256 --batch 8 --weight-decay 0.1 --clip 1 --threads 2)
build/ropescale train "${common[@]}" --out "$stages/stage1-copy.gguf" \
  --dim 128 --layers 4 --heads 4 --kv-heads 2 --hidden 352 \
  --steps 1500 --lr 1e-3 --min-lr 5e-4 --warmup 50 --passkey 0 --key-value 0 --repeat 1 --copy-gap 0 \
  --seed 1 --eval-every 0 --log-every 50 --log "$stages/stage1-copy.train.csv"
build/ropescale train "${common[@]}" --init "$stages/stage1-copy.gguf" --out "$stages/stage2-far-copy.gguf" \
  --steps 600 --lr 5e-4 --min-lr 5e-4 --warmup 20 --passkey 0 --key-value 0 --repeat 1 --copy-gap 0.5 \
  --seed 2 --eval-every 0 --log-every 50 --log "$stages/stage2-far-copy.train.csv"
build/ropescale train "${common[@]}" --init "$stages/stage2-far-copy.gguf" --out "$stages/stage3-retrieval.gguf" \
  --steps 2700 --lr 5e-4 --min-lr 1e-4 --warmup 20 --passkey 0.3 --key-value 0.25 --repeat 0.2 --copy-gap 0.5 \
  --seed 3 --eval-every 100 --checkpoint-every 500 --log "$stages/stage3-retrieval.train.csv"
build/ropescale train "${common[@]}" --init "$stages/stage3-retrieval.gguf" --out models/ropescale-kjv-256.gguf \
  --steps 2000 --lr 1e-3 --min-lr 1e-4 --warmup 20 --passkey 0.45 --key-value 0.05 --recall 0.2 --repeat 0 --copy-gap 0.5 \
  --seed 4 --eval-every 100 --checkpoint-every 500 --log models/ropescale-kjv-256.train.csv "$@"
