// Matmul, step 2 of the ladder: register blocking. Same operands, strides and epilogue
// as step 1 (matmul_v1_tiled.cu); f32 arithmetic on the CUDA cores.
//
// Step 1 does two shared-memory loads per multiply-add, and shared memory, not
// arithmetic, is then the limit. Here a block of 256 threads owns a 128 x 128 tile of C
// and each thread an 8 x 8 piece of it, kept in registers: per value of k a thread loads
// 8 values of A and 8 of B from shared memory (four 16-byte loads) and does 64
// multiply-adds with them, 8 times fewer loads per FMA.
//
// A thread's 8 rows are two groups of 4 (ty * 4 and 64 + ty * 4), and so are its
// columns, so that the 16-byte shared loads of a warp are contiguous. The A tile is
// stored transposed (as[p][i]) for the same reason. While the block computes on one
// slice of k, each thread already has the next slice's global loads in flight (in
// registers), which hides most of their latency without a second shared buffer.
//
// Global loads are coalesced along whichever dimension is contiguous in memory (k or m
// for A, k or n for B), chosen at run time from the strides.
#include "matmul.cuh"

#define BM 128
#define BN 128
#define BK 8
#define PAD 4                     // keeps the transposed stores of A conflict-free
#define LOADS (BM * BK / BLOCK)   // elements of A (and of B) each thread loads per slice
// The A and B tiles, then reused for the f32 output tile of the epilogue.
#define SMEM_BYTES (BM * (BN + TILE_PAD) * 4)

// Row and k offset (within the tile) of the e-th element a block loads of a BM x BK
// tile, walking k fastest when k is contiguous in memory, rows fastest otherwise.
__device__ __forceinline__ void slot(u32 e, bool k_fastest, u32 rows, u32& row, u32& p) {
    row = k_fastest ? e / BK : e % rows;
    p = k_fastest ? e % BK : e / rows;
}

template <typename T>
__device__ void regblock(Epilogue<T> ep, const T* a, const T* b, u32 m, u32 n, u32 k, u32 a_rs,
                         u32 a_cs, u32 b_rs, u32 b_cs) {
    // as[p][i] = A(i0 + i, p0 + p), bs[p][j] = B(p0 + p, j0 + j)
    auto as = reinterpret_cast<float(*)[BM + PAD]>(dynamic_smem());
    auto bs = reinterpret_cast<float(*)[BN + PAD]>(dynamic_smem() + BK * (BM + PAD) * 4);
    u32 tile_m, tile_n;
    grouped_tile(blockIdx.x, (m + BM - 1) / BM, (n + BN - 1) / BN, tile_m, tile_n);
    const u32 i0 = tile_m * BM, j0 = tile_n * BN;
    const u32 tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const bool a_k_fastest = a_cs == 1, b_k_fastest = b_cs != 1;

    // This thread's share of one slice of k, in registers (zeros past the edges).
    float ra[LOADS], rb[LOADS];
    auto fetch = [&](u32 p0) {
#pragma unroll
        for (u32 r = 0; r < LOADS; r++) {
            u32 row, p;
            slot(threadIdx.x + r * BLOCK, a_k_fastest, BM, row, p);
            const u32 i = i0 + row, pa = p0 + p;
            ra[r] = i < m && pa < k ? load(&a[(u64)i * a_rs + (u64)pa * a_cs]) : 0.0f;
            slot(threadIdx.x + r * BLOCK, b_k_fastest, BN, row, p);
            const u32 j = j0 + row, pb = p0 + p;
            rb[r] = pb < k && j < n ? load(&b[(u64)pb * b_rs + (u64)j * b_cs]) : 0.0f;
        }
    };
    auto stash = [&]() {
#pragma unroll
        for (u32 r = 0; r < LOADS; r++) {
            u32 row, p;
            slot(threadIdx.x + r * BLOCK, a_k_fastest, BM, row, p);
            as[p][row] = ra[r];
            slot(threadIdx.x + r * BLOCK, b_k_fastest, BN, row, p);
            bs[p][row] = rb[r];
        }
    };

    float acc[8][8] = {};
    fetch(0);
    for (u32 p0 = 0; p0 < k; p0 += BK) {
        stash();
        __syncthreads();
        if (p0 + BK < k) fetch(p0 + BK);  // in flight during the math below
#pragma unroll
        for (u32 p = 0; p < BK; p++) {
            const float4 a_lo = *reinterpret_cast<const float4*>(&as[p][ty * 4]);
            const float4 a_hi = *reinterpret_cast<const float4*>(&as[p][64 + ty * 4]);
            const float4 b_lo = *reinterpret_cast<const float4*>(&bs[p][tx * 4]);
            const float4 b_hi = *reinterpret_cast<const float4*>(&bs[p][64 + tx * 4]);
            const float av[8] = {a_lo.x, a_lo.y, a_lo.z, a_lo.w, a_hi.x, a_hi.y, a_hi.z, a_hi.w};
            const float bv[8] = {b_lo.x, b_lo.y, b_lo.z, b_lo.w, b_hi.x, b_hi.y, b_hi.z, b_hi.w};
#pragma unroll
            for (u32 r = 0; r < 8; r++)
#pragma unroll
                for (u32 c = 0; c < 8; c++) acc[r][c] += av[r] * bv[c];
        }
        __syncthreads();  // before the next stash overwrites the tiles
    }

    // Stage the 8 x 8 outputs (as 16-byte rows of 4) in shared memory, then the epilogue.
    float* out = reinterpret_cast<float*>(dynamic_smem());
#pragma unroll
    for (u32 r = 0; r < 8; r++)
#pragma unroll
        for (u32 c = 0; c < 8; c += 4) {
            const u32 i = (r / 4) * 64 + ty * 4 + r % 4, j = (c / 4) * 64 + tx * 4;
            *reinterpret_cast<float4*>(out + i * (BN + TILE_PAD) + j) =
                make_float4(acc[r][c], acc[r][c + 1], acc[r][c + 2], acc[r][c + 3]);
        }
    __syncthreads();
    finish_tile<BM, BN>(ep, out, i0, j0, m, n, threadIdx.x, BLOCK);
}

// Grid: one block per 128 x 128 tile of C (ceil(m / BM) * ceil(n / BN)), BLOCK threads,
// SMEM_BYTES (68 KiB) of dynamic shared memory.
#define INSTANTIATE(T, S)                                                                  \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                    \
        matmul_v2_##S(T* c, T* pre, const T* a, const T* b, const T* bias, u32 m, u32 n,   \
                      u32 k, u32 a_rs, u32 a_cs, u32 b_rs, u32 b_cs, u32 ldc, u32 flags) { \
        regblock(Epilogue<T>{c, pre, bias, ldc, flags}, a, b, m, n, k, a_rs, a_cs, b_rs,    \
                 b_cs);                                                                    \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
