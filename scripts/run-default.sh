#!/usr/bin/env bash
# The main job on the built-in default: the real stories260K checkpoint
# (trained at 512 tokens) planned for 8x its context, and the published
# Llama-3.1-8B setting checked and exported for every engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/ropescale
model=../shared/models/stories260K/stories260K.bin
if [[ -f "$model" ]]; then
  $bin inspect "$model"
  echo
  $bin plan "$model" --target-context 4096
  echo
  echo "generate (the request policy picks plain RoPE within 512 tokens, YaRN past it):"
  $bin generate --model "$model" --prompt "Once upon a time" --max-tokens 80 --rope-policy yarn
else
  echo "ropescale: $model is absent (../shared not beside the checkout); using the bundled Llama-3.1-8B config" >&2
fi
echo
$bin check configs/models/llama-3.1-8b
for to in hf-v5 vllm llama.cpp; do echo; $bin export configs/models/llama-3.1-8b --to "$to" --target-context 131072; done
