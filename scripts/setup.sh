#!/usr/bin/env bash
# Installs what hlwq needs to build and test: Debian packages (as root) and the Python packages
# used only by cross-check scripts, then builds. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium runs the chat page of `hlwq serve` headless in its test.
debian_packages=(cmake ninja-build g++ clang libhwy-dev nlohmann-json3-dev libcli11-dev
                 libcpp-httplib-dev libgtest-dev libgmock-dev libbenchmark-dev libpcre2-dev pkg-config
                 python3-pip xz-utils chromium)
missing=()
for package in "${debian_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: please install: ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python: cross-checks only (reference dequantization, HF tokenizers, the real mlx package),
# matplotlib for the plots of scripts/quality, and OpenAI's client for the test of `hlwq serve`.
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  numpy gguf==0.19.0 tokenizers safetensors mlx-cpu==0.32.4 mlx==0.32.4 mlx-lm==0.32.2 matplotlib openai \
  || echo "setup: warning: some Python packages failed to install; cross-check tests will be skipped" >&2

scripts/build.sh
