#!/usr/bin/env bash
# Links an `hlwq` binary that runs on another x86-64 Linux machine without this one's packages
# (the GPU machine of the device tool has no Highway and an older C++ runtime): the objects of the
# normal build (scripts/build.sh) relinked with libstdc++ and libgcc static, libhwy.so.1 copied
# beside it. Output: .device/bin/{hlwq,libhwy.so.1} (git-ignored). Run there as
#   LD_LIBRARY_PATH=.device/bin .device/bin/hlwq ...
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
mkdir -p .device/bin
link=$(sed -n '/^build hlwq:/,/^$/p' build/build.ninja)
objects=$(echo "$link" | head -1 | sed 's/^build hlwq: CXX_EXECUTABLE_LINKER__hlwq_Release//; s/|.*//')
libraries=$(echo "$link" | sed -n 's/^ *LINK_LIBRARIES = //p')
paths=$(echo "$link" | sed -n 's/^ *LINK_PATH = //p')
(cd build && g++ -O3 $objects -o ../.device/bin/hlwq.partial $paths $libraries -static-libstdc++ -static-libgcc)
mv .device/bin/hlwq.partial .device/bin/hlwq
cp "$(ldconfig -p | awk '/libhwy.so.1 / {print $NF; exit}')" .device/bin/libhwy.so.1
ls -la .device/bin
