#!/usr/bin/env bash
# Packs the Python packages that llama.cpp's rows of scripts/quality need (llama_cpp from
# llama-cpp-python, gguf, and what they import that a bare python3 + numpy lacks) into a folder
# for a machine that has python3 and numpy but no network, such as the GPU machine's CPU side.
#
#   scripts/pack_llama_cpp_python.sh [DEST]      # default DEST: .device/pylib (git-ignored)
#
# There (the folder carried along, DEST relative to the repository root):
#   PYTHONPATH=.device/pylib python3 scripts/quality --rows llama.cpp ...
#   PYTHONPATH=.device/pylib python3 scripts/llama_cpp_perplexity.py MODEL.gguf TEXT --stride 256 ...
# scripts/quality runs llama_cpp_perplexity.py, llama_cpp_quantize.py and make_reference_gguf.py
# with its own interpreter, and they inherit PYTHONPATH.
#
# What it copies, and why it runs on another Python 3:
#  - the packages' .py sources only, no __pycache__/.pyc (bytecode is tied to one Python version);
#    llama_cpp's Python side is ctypes, so it has no compiled extension;
#  - llama.cpp's shared libraries, only those `import llama_cpp` loads (libllama.so and the ggml
#    libraries it links by soname; not libmtmd, the multimodal library, loaded only for image
#    chat). They link only glibc, libstdc++, libgcc_s and libgomp (printed at the end) and find
#    each other through RUNPATH $ORIGIN; this machine's libgomp.so.1 (GNU OpenMP, ~300 kB) goes
#    along too, found first through that RUNPATH, in case the other machine lacks it;
#  - optional C speedups (markupsafe's, PyYAML's) are left out: each is built for one Python
#    version and the package falls back to its pure-Python code;
#  - each package's .dist-info (licence and metadata), llama_cpp's server (needs FastAPI; not
#    imported) is dropped.
# The default is checked at the end: a python3 that sees only DEST and numpy imports llama_cpp and
# gguf. Costs about 10 MB of the 64 MiB carry.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT/.device/pylib}
PYTHON=${PYTHON:-python3}
# Python packages (import names), then the distributions whose .dist-info goes along.
PACKAGES=(llama_cpp gguf diskcache jinja2 markupsafe yaml typing_extensions)
DISTRIBUTIONS=(llama_cpp_python gguf diskcache jinja2 markupsafe PyYAML typing_extensions)
LLAMA_LIBRARIES=(libllama.so libggml.so.0 libggml-base.so.0 libggml-cpu.so.0)

# Where an import name lives: its package folder, or its single-file module.
location() {
  "$PYTHON" - "$1" <<'EOF'
import importlib.util, os, sys
spec = importlib.util.find_spec(sys.argv[1])
if spec is None:
    sys.exit(f"pack_llama_cpp_python: {sys.argv[1]} is not installed for this python3 (pip install llama-cpp-python gguf)")
print(os.path.dirname(spec.origin) if spec.submodule_search_locations else spec.origin)
EOF
}

site_packages=$(dirname "$(location llama_cpp)")
partial="$DEST.partial"
rm -rf "$partial"
mkdir -p "$partial"
for package in "${PACKAGES[@]}"; do
  source=$(location "$package")
  if [[ -d "$source" ]]; then
    # Sources and data files; no bytecode, no compiled extensions, no tests.
    (cd "$(dirname "$source")" &&
     find "$(basename "$source")" \( -name __pycache__ -o -name tests -o -name server \) -prune -o -type f \
       ! -name '*.pyc' ! -name '*.so' ! -name '*.so.*' ! -name '*.c' ! -name '*.pyx' -print0 |
     xargs -0 cp --parents -t "$partial")
  else
    cp "$source" "$partial/"
  fi
done
for distribution in "${DISTRIBUTIONS[@]}"; do
  for info in "$site_packages"/"$distribution"-*.dist-info "$site_packages"/"${distribution,,}"-*.dist-info; do
    [[ -d "$info" ]] && cp -r "$info" "$partial/" && break
  done
done
mkdir -p "$partial/llama_cpp/lib"
for library in "${LLAMA_LIBRARIES[@]}"; do
  cp "$site_packages/llama_cpp/lib/$library" "$partial/llama_cpp/lib/$library"
  if command -v strip >/dev/null; then strip --strip-unneeded "$partial/llama_cpp/lib/$library"; fi
done
openmp=$(ldd "$site_packages/llama_cpp/lib/libggml-base.so.0" | sed -n 's/^\s*libgomp.so.1 => \(\S*\).*/\1/p')
if [[ -n "$openmp" ]]; then cp -L "$openmp" "$partial/llama_cpp/lib/libgomp.so.1"; fi

# The check: a clean environment, site-packages off (-S), only the pack and numpy on the path.
numpy_only=$(mktemp -d)
trap 'rm -rf "$numpy_only"' EXIT
numpy_folder=$(location numpy)
ln -s "$numpy_folder" "$numpy_only/numpy"
[[ -d "$numpy_folder.libs" ]] && ln -s "$numpy_folder.libs" "$numpy_only/numpy.libs"
env -i PATH=/usr/bin:/bin PYTHONPATH="$partial:$numpy_only" PYTHONDONTWRITEBYTECODE=1 "$("$PYTHON" -c 'import sys; print(sys.executable)')" -S -c '
import sys, llama_cpp, gguf, gguf.quants, yaml, jinja2
bad = [m.__file__ for m in list(sys.modules.values())
       if "site-packages" in (getattr(m, "__file__", None) or "") and "/numpy" not in m.__file__]
assert not bad, f"imported from outside the pack: {bad}"
print(f"llama_cpp {llama_cpp.__version__} (system info: {llama_cpp.llama_print_system_info().decode()}), gguf, yaml, jinja2: imported from the pack alone")
'
find "$partial" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$DEST"
mv "$partial" "$DEST"

echo "wrote $DEST: $(du -sb "$DEST" | cut -f1) bytes ($(du -sh "$DEST" | cut -f1)), $(find "$DEST" -type f | wc -l) files"
for library in "${LLAMA_LIBRARIES[@]}" libgomp.so.1; do
  [[ -f "$DEST/llama_cpp/lib/$library" ]] || continue
  echo "$library needs: $(readelf -d "$DEST/llama_cpp/lib/$library" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
done
echo "newest symbol versions needed: $(for library in "${LLAMA_LIBRARIES[@]}" libgomp.so.1; do
  [[ -f "$DEST/llama_cpp/lib/$library" ]] && objdump -T "$DEST/llama_cpp/lib/$library" | grep UND; done | grep -o 'GLIBC_[0-9.]*\|GLIBCXX_[0-9.]*\|GOMP_[0-9.]*' |
  sort -t_ -k1,1 -k2,2V | awk -F_ '{newest[$1]=$0} END {for (k in newest) printf "%s ", newest[k]}')"
