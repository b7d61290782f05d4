// Shared by the matmul ladder (matmul_v1_tiled.cu ... matmul_v4_wgmma.sm90a.cu): the
// epilogue that turns an f32 accumulator into the stored output, and the order in which
// blocks walk the output tiles.
//
// Every version computes C (m, n) = A (m, k) · B (k, n) with f32 accumulation, then the
// epilogue of gpt2-kernels/src/cpu/matmul.rs, per element:
//   v = [C +] acc + bias[j];  pre = v;  C = gelu(v) or v
// (the CPU's `gemm` with `accumulate`, `Epilogue { bias, gelu, pre }`).
#pragma once
#include "common.cuh"

// Epilogue flags (the `flags` kernel argument).
#define MATMUL_ACCUMULATE 1u  // v starts from C's current value (backward passes accumulate)
#define MATMUL_GELU 2u        // C = gelu(v)

// The output side of a matmul: where C (row stride ldc), the optional pre-activation
// (same layout) and the optional bias (n values) are. Null pointers mean "none".
template <typename T>
struct Epilogue {
    T* c;
    T* pre;
    const T* bias;
    u32 ldc;
    u32 flags;

    __device__ __forceinline__ float finish(u64 at, u32 j, float acc) const {
        float v = acc;
        if (flags & MATMUL_ACCUMULATE) v += load(&c[at]);
        if (bias) v += load(&bias[j]);
        if (pre) store(&pre[at], v);
        return (flags & MATMUL_GELU) ? gelu(v) : v;
    }

    // Output (i, j) from its accumulator.
    __device__ __forceinline__ void apply(u32 i, u32 j, float acc) const {
        const u64 at = (u64)i * ldc + j;
        store(&c[at], finish(at, j, acc));
    }

    // Outputs (i, j) and, if j + 1 < n, (i, j + 1), for an even j: one aligned 8-byte
    // (f32) or 4-byte (bf16) store when ldc is even too (the tensor-core kernels' output
    // fragments hold such pairs).
    __device__ __forceinline__ void apply_pair(u32 i, u32 j, u32 n, float acc0,
                                               float acc1) const {
        const u64 at = (u64)i * ldc + j;
        if (j + 1 < n && ldc % 2 == 0) {
            store2(&c[at], finish(at, j, acc0), finish(at + 1, j + 1, acc1));
        } else {
            apply(i, j, acc0);
            if (j + 1 < n) apply(i, j + 1, acc1);
        }
    }
};

// The epilogue of a ROWS x COLS tile of accumulators staged in shared memory (`tile`, row
// stride COLS + TILE_PAD), for output rows m0.. and columns n0.. of an m x n product, by
// `threads` threads of which this is number `x`. Staging keeps the epilogue code in one
// place instead of unrolled per register of the tensor-core fragments, and makes the
// global accesses coalesced: consecutive threads write consecutive column pairs.
#define TILE_PAD 8  // floats: an accumulator pair's 8-byte stores fill the banks once
template <u32 ROWS, u32 COLS, typename T>
__device__ __forceinline__ void finish_tile(const Epilogue<T>& ep, const float* tile, u32 m0,
                                            u32 n0, u32 m, u32 n, u32 x, u32 threads) {
    for (u32 at = x; at < ROWS * COLS / 2; at += threads) {
        const u32 r = at / (COLS / 2), col = at % (COLS / 2) * 2;
        const u32 i = m0 + r, j = n0 + col;
        const float* v = tile + r * (COLS + TILE_PAD) + col;
        if (i < m && j < n) ep.apply_pair(i, j, n, v[0], v[1]);
    }
}

// Tile (tile_m, tile_n) of linear block index `bid`, walking the tiles in groups of
// GROUP_M tile rows, column by column inside a group: the blocks that run at the same
// time share a few rows of A and columns of B, which then stay in L2.
#define GROUP_M 8
__device__ __forceinline__ void grouped_tile(u32 bid, u32 tiles_m, u32 tiles_n, u32& tile_m,
                                             u32& tile_n) {
    const u32 per_group = GROUP_M * tiles_n;
    const u32 first_m = bid / per_group * GROUP_M;
    const u32 rows = min(tiles_m - first_m, (u32)GROUP_M);
    const u32 in_group = bid % per_group;
    tile_m = first_m + in_group % rows;
    tile_n = in_group / rows;
}
