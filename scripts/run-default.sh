#!/usr/bin/env bash
# The main job on the built-in default model, models/ropescale-kjv-256.gguf
# (trained by ropescale at 256 tokens; recipe in scripts/train-default.sh):
# every scaling method at 1×–16× of its trained context — perplexity on
# held-out KJV text, passkey retrieval and the RULER-style tasks (compact
# wording, so each fits the model's 256 tokens) with needle NLL and effective
# context — as a table, JSON and the HTML report (reports/default.html). Then the published Llama-3.1-8B setting
# checked and exported for every engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/ropescale
model=models/ropescale-kjv-256.gguf
scripts/kjv-text.sh
$bin inspect "$model"
echo
mkdir -p reports
$bin eval suite --model "$model" --text build/data/kjv_heldout.txt --ctx 256,512,1024,2048,4096 --tokens 16384 \
  --depths 0,0.5,1 --trials 2 --tasks all --task-wording compact --json reports/default.json --report reports/default.html
echo
echo "generate (the request policy picks plain RoPE within 256 tokens, YaRN past it):"
$bin generate --model "$model" --prompt "And it came to pass" --max-tokens 300 --rope-policy yarn
echo
$bin check configs/models/llama-3.1-8b
for to in hf-v5 vllm llama.cpp; do echo; $bin export configs/models/llama-3.1-8b --to "$to" --target-context 131072; done
