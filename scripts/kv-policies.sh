#!/usr/bin/env bash
# Every (RoPE scaling method × KV / position policy) pair on the default model, 1× to 16× its trained
# 256 tokens, in ONE `eval suite` run (--kv-policy, repeated): held-out perplexity by context length,
# passkey retrieval by length and the KV-cache bytes the sessions allocate at each length. Policies:
# full caches f32 / f16 / q8_0 / q4_0, StreamingLLM sinks + window, Self-Extend, and H2O eviction to a
# 256-token budget (plain, over q8_0, and with the needle sentence protected by --kv-protect — a
# pattern a user would write for their documents' headings; here it shows what protection buys).
# Writes reports/kv-policies/suite.{json,html} and reports/kv-policies.md.
#   scripts/kv-policies.sh   (needs scripts/build.sh first; ~6 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/ropescale-kjv-256.gguf
scripts/kjv-text.sh
mkdir -p reports/kv-policies
build/ropescale eval suite --model "$model" --methods none,yarn:4,yarn:8,yarn:16 --text build/data/kjv_heldout.txt \
  --tokens 16384 --ctx 256,1024,2048,4096 --lengths 1024,2048,4096 --depths 0,0.25,0.5,0.75,1 --trials 4 --threads 2 \
  --quiet --json reports/kv-policies/suite.json --report reports/kv-policies/suite.html \
  --kv-policy f32 f16 q8_0 q4_0 \
              kv-window=192,kv-sinks=4 q8_0,kv-window=192,kv-sinks=4 \
              self-extend-group=16,self-extend-window=128 q8_0,self-extend-group=16,self-extend-window=128 \
              kv-budget-tokens=256 q8_0,kv-budget-tokens=256 'kv-budget-tokens=256,kv-protect=The pass key is [0-9]+\. Remember it\. [0-9]+ is the pass key\.'
python3 scripts/kv_policy_table.py reports/kv-policies/suite.json | tee reports/kv-policies.md
