#!/usr/bin/env bash
# Installs every Debian 12 package ropescale's build and tests need.
# Idempotent: only missing packages are installed (apt-get update runs only then).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config        # toolchain
  clang libclang-rt-14-dev                              # sanitizer + libFuzzer build
  libgtest-dev libgmock-dev googletest libbenchmark-dev # tests and benchmarks
  nlohmann-json3-dev libcli11-dev libfmt-dev libhwy-dev libopenblas-dev \
  libsentencepiece-dev libcpp-httplib-dev               # library dependencies
  python3 python3-venv python3-pip                      # the HF oracle's virtualenv
  chromium fonts-dejavu-core                            # renders the HTML report in its test
  bible-kjv                                             # the default model's training and held-out text
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "ropescale: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
