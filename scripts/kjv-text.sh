#!/usr/bin/env bash
# The King James Bible as plain text, from Debian's bible-kjv: one verse per
# line, references removed (build/data/kjv.txt, about 4.1 MB), and its last 2%
# (build/data/kjv_heldout.txt) — the part `ropescale train` holds out, so
# evaluations of the default model read text it never trained on.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v bible >/dev/null || { echo "ropescale: 'bible' not found (scripts/install-deps.sh installs bible-kjv)" >&2; exit 2; }
mkdir -p build/data
bible -f 'gen1:1-rev22:21' </dev/null | sed -E 's/^[0-9A-Za-z]+[0-9]+:[0-9]+ //' > build/data/kjv.txt
size=$(wc -c < build/data/kjv.txt)
tail -c $((size / 50)) build/data/kjv.txt > build/data/kjv_heldout.txt
