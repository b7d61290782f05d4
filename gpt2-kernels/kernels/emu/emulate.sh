#!/usr/bin/env bash
# Builds and runs the CPU emulation of our CUDA kernels (emulate.cpp says what it checks).
# Needs g++ (C++20) only. Usage: bash gpt2-kernels/kernels/emu/emulate.sh [filter]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kernels="$(dirname "$here")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The kernels as they are, except `extern __shared__` (a block-scope static cannot be extern);
# the PTX wrappers (mma.cuh, hopper.cuh) replaced by their emulations.
for f in "$kernels"/*.cu "$kernels"/*.cuh; do
    sed -e 's/extern __shared__ __align__([0-9]*)/extern/' "$f" >"$tmp/$(basename "$f")"
done
cp "$here"/mma.cuh "$here"/hopper.cuh "$tmp"/
flags=(-std=c++20 -O2 -pthread -I "$here" -I "$tmp" -Wall -Wno-unknown-pragmas)
objs=()
for k in matmul_v1_tiled matmul_v2_regblock matmul_v3_mma matmul_v4_wgmma.sm90a attention attention_flash sample; do
    ns="emu_${k//./_}"
    cat >"$tmp/tu_$ns.cpp" <<CPP
#include <cmath>
#include <cstring>
#include <vector>
#include <array>
#include "cuda_bf16.h"
namespace $ns {
#include "$k.cu"
alignas(1024) unsigned char smem_bytes[256 << 10];
static int registered = emu_register_arena(smem_bytes, sizeof smem_bytes);
}
CPP
    g++ "${flags[@]}" -c "$tmp/tu_$ns.cpp" -o "$tmp/$ns.o" &
    objs+=("$tmp/$ns.o")
done
for f in emulate matmul_tests attention_tests sample_tests; do
    g++ "${flags[@]}" -c "$here/$f.cpp" -o "$tmp/$f.o" &
    objs+=("$tmp/$f.o")
done
wait
g++ -pthread "${objs[@]}" -o "$tmp/emulate"
"$tmp/emulate" "$@"
