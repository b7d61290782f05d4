// Tensor-core operands in shared memory (sm_80): swizzled bf16 tiles, the fragments
// ldmatrix gives from them, and accumulators reused as operands. Used by
// matmul_v3_mma.cu and attention_flash.cu; the instructions are in mma.cuh.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point
// type"), for lane l of a warp, g = l / 4 and t = l % 4:
//   A (16 x 16, row-major), 4 registers of 2 bf16 (low half = lower column):
//     a[0] = A[g][2t, 2t+1]   a[1] = A[g+8][2t, 2t+1]
//     a[2] = A[g][2t+8, +9]   a[3] = A[g+8][2t+8, +9]
//   B (16 x 8, k x n), 2 registers: b[0] = B[2t, 2t+1][g]   b[1] = B[2t+8, 2t+9][g]
//   C, D (16 x 8, f32): c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]
// ldmatrix.x4 loads four 8 x 8 b16 matrices; lane l gives the address of row l % 8 of
// matrix l / 8, and receives from each matrix j the elements (row g, columns 2t, 2t+1)
// in register j; with .trans, the elements (rows 2t, 2t+1, column g). So an 8 x 8 block
// stored row by row gives A or B fragments of its own orientation, and .trans gives
// those of its transpose: every operand layout is one instruction away.
#pragma once
#include "mma.cuh"

// ---- shared-memory tiles -------------------------------------------------------------
// Element offset of 16-byte chunk `chunk` of row `row` in a shared tile of bf16 rows of
// CHUNKS chunks each. The chunk index is XOR-ed with a few row bits, so that the 8 rows
// one ldmatrix matrix reads (same logical chunk, consecutive rows) fall in 8 different
// groups of 4 banks: conflict-free for rows of 64 bytes (4 chunks) or of 128 bytes and
// more (8 or more chunks).
template <u32 CHUNKS>
__device__ __forceinline__ u32 swizzle(u32 row, u32 chunk) {
    static_assert(CHUNKS == 4 || CHUNKS % 8 == 0, "rows of 64 bytes or a multiple of 128");
    const u32 x = CHUNKS == 4 ? (row >> 1) & 3 : row & 7;
    return row * CHUNKS * 8 + (chunk ^ x) * 8;
}

// Two f32 as a bf16 pair (x in the low half), rounded to nearest even.
__device__ __forceinline__ u32 pack_bf16(float x, float y) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(x, y);
    return *reinterpret_cast<const u32*>(&v);
}

// The A fragment (16 x 16) of columns 16 kk .. 16 kk + 15 of a 16-row block held as
// f32 accumulator tiles c[n8][4] (the C layout): the accumulators of two neighbouring
// n8 tiles are, element for element, the A fragment of their 16 columns. This is how
// attention feeds the probabilities P = softmax(S) back into P·V without shared memory.
__device__ __forceinline__ void acc_to_a(u32 (&a)[4], const float (&lo)[4],
                                         const float (&hi)[4]) {
    a[0] = pack_bf16(lo[0], lo[1]);
    a[1] = pack_bf16(lo[2], lo[3]);
    a[2] = pack_bf16(hi[0], hi[1]);
    a[3] = pack_bf16(hi[2], hi[3]);
}

// ---- fragments from swizzled shared tiles --------------------------------------------
// Tiles are bf16 rows of CHUNKS 16-byte chunks laid out by swizzle<CHUNKS>. Each loader
// is one ldmatrix.x4; (r0, k0) and (n0, k0) are multiples of 16 (k0 of 16 along k).
// A fragment of rows r0..r0+15, columns k0..k0+15 of A, from a tile stored [m][k].
template <u32 CHUNKS>
__device__ __forceinline__ void frag_a_mk(u32 (&a)[4], const bf16* s, u32 r0, u32 k0) {
    const u32 q = threadIdx.x % 32 / 8, r = threadIdx.x % 8;
    ldmatrix_x4(a, s + swizzle<CHUNKS>(r0 + (q & 1) * 8 + r, k0 / 8 + q / 2));
}
// The same from a tile stored [k][m] (A transposed in memory).
template <u32 CHUNKS>
__device__ __forceinline__ void frag_a_km(u32 (&a)[4], const bf16* s, u32 r0, u32 k0) {
    const u32 q = threadIdx.x % 32 / 8, r = threadIdx.x % 8;
    ldmatrix_x4_trans(a, s + swizzle<CHUNKS>(k0 + (q / 2) * 8 + r, r0 / 8 + (q & 1)));
}
// B fragments of two n8 tiles, columns n0..n0+7 in b[0], b[1] and n0+8..n0+15 in b[2],
// b[3], rows k0..k0+15, from a tile stored [n][k].
template <u32 CHUNKS>
__device__ __forceinline__ void frag_b_nk(u32 (&b)[4], const bf16* s, u32 n0, u32 k0) {
    const u32 q = threadIdx.x % 32 / 8, r = threadIdx.x % 8;
    ldmatrix_x4(b, s + swizzle<CHUNKS>(n0 + (q / 2) * 8 + r, k0 / 8 + (q & 1)));
}
// The same from a tile stored [k][n].
template <u32 CHUNKS>
__device__ __forceinline__ void frag_b_kn(u32 (&b)[4], const bf16* s, u32 n0, u32 k0) {
    const u32 q = threadIdx.x % 32 / 8, r = threadIdx.x % 8;
    ldmatrix_x4_trans(b, s + swizzle<CHUNKS>(k0 + (q & 1) * 8 + r, n0 / 8 + q / 2));
}
