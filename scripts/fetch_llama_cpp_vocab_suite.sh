#!/usr/bin/env bash
# Fetches llama.cpp's tokenizer test suite (models/ggml-vocab-*.gguf, with the .gguf.inp strings
# and the .gguf.out ids llama.cpp produced for them) from the source package of llama-cpp-python
# on PyPI, which vendors llama.cpp, into models/llama-cpp-vocab/ (git-ignored). Nothing is built.
#
#   scripts/fetch_llama_cpp_vocab_suite.sh [DEST]     # default DEST: models/llama-cpp-vocab
#
# The package is pinned by version and sha256. When PyPI cannot be reached, or the download does
# not match, it says so and exits 0 without the suite: the tests that need it then skip and say
# why (the suite test prints the folder it looked in).
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.3.36
sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
url=https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-$version.tar.gz
dest=${1:-models/llama-cpp-vocab}
stamp=$dest/.llama-cpp-python-$version

if [[ -f $stamp ]]; then
  echo "$dest"
  exit 0
fi
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
if ! python3 - "$url" "$sha256" "$download/sdist.tar.gz" "$dest" "$version" <<'PY'
import hashlib, pathlib, shutil, sys, tarfile, urllib.request

url, expected, archive, dest, version = sys.argv[1:]
try:
    with urllib.request.urlopen(url, timeout=120) as response, open(archive, "wb") as sink:
        shutil.copyfileobj(response, sink, 1 << 20)
except OSError as error:
    print(f"fetch_llama_cpp_vocab_suite: PyPI not reachable ({error}); the suite's tests will skip", file=sys.stderr)
    sys.exit(1)
digest = hashlib.sha256(pathlib.Path(archive).read_bytes()).hexdigest()
if digest != expected:
    print(f"fetch_llama_cpp_vocab_suite: llama-cpp-python {version} has sha256 {digest}, expected {expected}; "
          "the suite's tests will skip", file=sys.stderr)
    sys.exit(1)
prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/models/"
dest = pathlib.Path(dest)
dest.mkdir(parents=True, exist_ok=True)
count = 0
with tarfile.open(archive, "r:gz") as tar:
    for member in tar:
        name = member.name[len(prefix):] if member.name.startswith(prefix) else ""
        if not member.isfile() or "/" in name or not name.startswith("ggml-vocab-"):
            continue
        with tar.extractfile(member) as source, open(dest / (name + ".part"), "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
        (dest / (name + ".part")).rename(dest / name)
        count += 1
if count == 0:
    print(f"fetch_llama_cpp_vocab_suite: no ggml-vocab-* files in {url}", file=sys.stderr)
    sys.exit(1)
print(f"fetch_llama_cpp_vocab_suite: {count} files from llama-cpp-python {version} in {dest}", file=sys.stderr)
PY
then
  exit 0
fi
touch "$stamp"
echo "$dest"
