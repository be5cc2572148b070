#!/usr/bin/env bash
# Builds and runs every test (CTest + GoogleTest), then `hlwq serve` through OpenAI's Python client
# on the demo model. GPU tests report as skipped without a GPU; the serve test without the demo
# model says so and does not count as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
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
