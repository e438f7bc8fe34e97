#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install the packages, build
# ropescale (Release), and run the main job on the built-in default model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
scripts/run-default.sh
