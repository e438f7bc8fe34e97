#!/usr/bin/env bash
# ctest entry for the Python oracles (HF transformers, gguf): runs SCRIPT with
# the oracle virtualenv's python; exit 77 (skipped) when the venv is absent.
# Usage: run_oracle.sh SCRIPT ARGS...
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${ROPESCALE_ORACLE_VENV:-$root/.venv-oracle}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
if [[ ! -x "$venv/bin/python" ]]; then
  echo "SKIPPED LOUDLY: no oracle virtualenv at $venv (run scripts/oracle-venv.sh)"
  exit 77
fi
script="$1"
shift
exec "$venv/bin/python" "$here/$script" "$@"
