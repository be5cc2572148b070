#!/usr/bin/env bash
# Builds and runs every test (CTest + GoogleTest, the quality scripts' checks), then `hlwq serve`
# through OpenAI's Python client on the demo model. GPU tests report as skipped without a GPU; the serve test without the demo
# model says so and does not count as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
# The quality scripts' own checks (accounting of bits and SQNR, the llama.cpp round trip's row
# matching), on synthetic data: no download, no llama.cpp.
# Exit status 77: a part was skipped (a Python package absent), said as such, not counted as passed.
for check in scripts/test_sqnr_frontier.py scripts/test_llama_cpp_round_trip.py; do
  status=0
  python3 "$check" >/dev/null || status=$?
  if [[ $status == 77 ]]; then
    echo "test.sh: SKIPPED (not passed): part of $check (a Python package is missing)" >&2
  elif [[ $status != 0 ]]; then
    python3 "$check" | grep -v "^ok" >&2 || true
    echo "test.sh: $check failed" >&2
    exit 1
  fi
done
# The serve tests need the demo model (scripts/fetch_demo_model.sh) and run alone: they start servers
# and load tests whose timing the parallel CTest run would disturb.
# The chat page's test also needs Debian's chromium (headless).
if [[ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ]]; then
  python3 tests/server/openai_client_test.py
  python3 tests/server/serve_faults_test.py
  if command -v chromium >/dev/null; then
    python3 tests/server/chat_page_screenshot_test.py
  else
    echo "test.sh: SKIPPED (not passed): tests/server/chat_page_screenshot_test.py needs chromium" >&2
  fi
else
  echo "test.sh: SKIPPED (not passed): tests/server/openai_client_test.py, serve_faults_test.py and" \
       "chat_page_screenshot_test.py need the demo model, scripts/fetch_demo_model.sh fetches it" >&2
fi
