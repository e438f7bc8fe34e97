#!/usr/bin/env bash
# The literature's ordering, measured on the default model at 8× its trained
# context (256 → 2048 tokens): plain RoPE, linear (PI), NTK and YaRN zero-shot,
# and YaRN — and, for reference, PI — after the same short fine-tune at 2048:
# perplexity on held-out KJV text (the last 2% the trainer never saw), passkey
# retrieval at 2048, and short-context perplexity at 256.
# Writes reports/finetune-compare.{md,html,json}.
#   scripts/finetune-compare.sh [--steps N]   (extra flags go to both `ropescale finetune` runs)
set -euo pipefail
cd "$(dirname "$0")/.."
base=models/ropescale-kjv-256.gguf
scripts/kjv-text.sh  # build/data/kjv.txt and its held-out tail kjv_heldout.txt
mkdir -p reports
common=(--text build/data/kjv_heldout.txt --ctx 256,2048 --lengths 2048 --depths 0,0.25,0.5,0.75,1 --trials 4 --threads 2 --quiet)
build/ropescale eval suite --model "$base" --methods none,linear:8,ntk:8,yarn:8 "${common[@]}" \
  --json reports/finetune-compare-base.json --report reports/finetune-compare-base.html
# The fine-tune: 150 steps × 2 sequences × 2048 tokens with the scaling in place,
# the data mix of the default model's last stage.
for method in yarn linear; do
  ft=models/ropescale-kjv-256-${method}8-ft.gguf
  build/ropescale finetune --model "$base" --rope-scaling "{\"rope_type\":\"$method\",\"factor\":8}" --ctx 2048 \
    --text build/data/kjv.txt --out "$ft" --steps 150 --batch 2 --lr 5e-4 --min-lr 5e-5 --warmup 10 \
    --passkey 0.45 --key-value 0.05 --recall 0.2 --seed 1 --threads 2 --eval-every 50 --valid 8 \
    --log "models/ropescale-kjv-256-${method}8-ft.train.csv" "$@"
  build/ropescale eval suite --model "$ft" --methods model "${common[@]}" \
    --json "reports/finetune-compare-${method}8-ft.json" --report "reports/finetune-compare-${method}8-ft.html"
done
python3 scripts/compare_table.py reports/finetune-compare-base.json \
  "reports/finetune-compare-yarn8-ft.json=YaRN ×8 + fine-tune" "reports/finetune-compare-linear8-ft.json=PI ×8 + fine-tune" |
  tee reports/finetune-compare.md
