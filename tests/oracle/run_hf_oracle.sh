#!/usr/bin/env bash
# ctest entry for the HF oracle: exit 77 (skipped) when the oracle venv is absent.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${ROPESCALE_ORACLE_VENV:-$root/.venv-oracle}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
if [[ ! -x "$venv/bin/python" ]]; then
  echo "SKIPPED LOUDLY: no HF oracle virtualenv at $venv (run scripts/oracle-venv.sh)"
  exit 77
fi
exec "$venv/bin/python" "$here/hf_oracle.py" "$1" "$root/configs/models"
