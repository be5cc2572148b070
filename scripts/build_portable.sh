#!/usr/bin/env bash
# Links an `hlwq` binary that runs on another x86-64 Linux machine without this one's packages
# (the GPU machine of the device tool has no Highway and an older C++ runtime): the objects of the
# normal build (scripts/build.sh) relinked with libstdc++ and libgcc static, libhwy.so.1 copied
# beside it; the same for the test binary. Output: .device/bin/{hlwq,hlwq_tests} and the shared
# libraries listed below (git-ignored). The CUDA build links cuBLAS dynamically: the GPU machine's
# CUDA 13 has it. Run there as
#   LD_LIBRARY_PATH=.device/bin .device/bin/hlwq ...
# With target names as arguments (e.g. `scripts/build_portable.sh hlwq_gpu_tests linear_versions`)
# only those are built and relinked.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
if [[ ${#targets[@]} -gt 0 && -f build/build.ninja ]]; then
  cmake --build build --target "${targets[@]}" -j "$(nproc)" >/dev/null
else
  scripts/build.sh >/dev/null
  [[ ${#targets[@]} -gt 0 ]] || targets=(hlwq hlwq_tests)
fi
mkdir -p .device/bin
# Relinks one executable of build/ with libstdc++ and libgcc static, stripped.
relink() {
  local target=$1 link objects libraries paths
  link=$(sed -n "/^build $target[: ].*CXX_EXECUTABLE_LINKER__${target}_Release/,/^\$/p" build/build.ninja)
  objects=$(echo "$link" | head -1 | sed "s/^.*CXX_EXECUTABLE_LINKER__${target}_Release//; s/|.*//")
  libraries=$(echo "$link" | sed -n 's/^ *LINK_LIBRARIES = //p')
  paths=$(echo "$link" | sed -n 's/^ *LINK_PATH = //p')
  (cd build && g++ -O3 $objects -o "../.device/bin/$target.partial" $paths $libraries -static-libstdc++ -static-libgcc -s)
  mv ".device/bin/$target.partial" ".device/bin/$target"
}
for target in "${targets[@]}"; do relink "$target"; done
# The shared libraries the binaries load that the GPU machine lacks: Highway, and cpp-httplib
# (`hlwq serve`) with what it links (brotli, PCRE2, OpenSSL 3).
for library in libhwy.so.1 libcpp-httplib.so.0.11 libbrotlidec.so.1 libbrotlienc.so.1 libbrotlicommon.so.1 \
  libpcre2-8.so.0 libssl.so.3 libcrypto.so.3; do
  cp -L "$(ldconfig -p | awk -v name="$library" '$1 == name {print $NF; exit}')" ".device/bin/$library"
done
ls -la .device/bin
