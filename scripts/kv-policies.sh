#!/usr/bin/env bash
# Every (RoPE scaling method × KV / position policy) pair on the default model, 1× to 16× its trained
# 256 tokens: held-out perplexity by context length, passkey retrieval by length, and the KV-cache
# bytes each policy holds at the longest length (from `ropescale plan`, i.e. kv_cache_bytes — the
# function sessions allocate by). Policies: full caches f32 / f16 / q8_0 / q4_0, StreamingLLM sinks +
# window, and Self-Extend. Writes reports/kv-policies/*.json and reports/kv-policies.md.
#   scripts/kv-policies.sh   (needs scripts/build.sh first; ~2 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/ropescale-kjv-256.gguf
scripts/kjv-text.sh
mkdir -p reports/kv-policies
common=(--model "$model" --methods none,yarn:4,yarn:8,yarn:16 --text build/data/kjv_heldout.txt --tokens 16384
        --ctx 256,1024,2048,4096 --lengths 1024,2048,4096 --depths 0,0.25,0.5,0.75,1 --trials 4 --threads 2 --quiet)
policies=(
  "f32=--kv-cache f32"
  "f16=--kv-cache f16"
  "q8_0=--kv-cache q8_0"
  "q4_0=--kv-cache q4_0"
  "sinks4-window192=--kv-window 192 --kv-sinks 4"
  "q8_0-sinks4-window192=--kv-cache q8_0 --kv-window 192 --kv-sinks 4"
  "selfextend-G16-W128=--self-extend-group 16 --self-extend-window 128"
  "q8_0-selfextend-G16-W128=--kv-cache q8_0 --self-extend-group 16 --self-extend-window 128"
)
args=()
for p in "${policies[@]}"; do
  name=${p%%=*}
  read -r -a flags <<< "${p#*=}"
  echo "kv-policies: $name" >&2
  build/ropescale eval suite "${common[@]}" "${flags[@]}" --json "reports/kv-policies/$name.json"
  args+=("reports/kv-policies/$name.json=$name")
done
build/ropescale plan "$model" --target-context 4096 --json > reports/kv-policies/plan-4096.json
build/ropescale plan "$model" --target-context 196 --json > reports/kv-policies/plan-196.json
python3 scripts/kv_policy_table.py reports/kv-policies/plan-4096.json reports/kv-policies/plan-196.json "${args[@]}" |
  tee reports/kv-policies.md
