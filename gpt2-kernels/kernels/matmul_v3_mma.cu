// Matmul, step 3 of the ladder: bf16 tensor cores with mma.sync (sm_80 and newer).
//
// C (m, n) = A (m, k) · B (k, n) in bf16 with f32 accumulation, then the epilogue of
// matmul.cuh. The layouts are compile-time, one kernel per combination GPT-2 uses,
// named as in BLAS for row-major storage:
//   nn: A stored (m, k), B stored (k, n)  forward with (K, N) weights; dX with (N, K)
//   nt: A stored (m, k), B stored (n, k)  forward with (N, K) weights; dX with (K, N)
//   tn: A stored (k, m), B stored (k, n)  dW (the sum runs over the rows of both)
// Requirements (checked by the host): the contiguous dimension of each operand and the
// leading dimensions are multiples of 8 elements (16 bytes), because every global read is
// a 16-byte cp.async; any m, n, k are handled by zero-filling reads past the edges.
//
// What changes from step 2 (matmul_v2_regblock.cu):
// - The multiply-adds run on the tensor cores: one mma.sync.m16n8k16 is 2048 of them
//   for a warp. A block of 8 warps owns a 128 x 128 tile of C, each warp 64 x 32 of it,
//   held as 4 x 4 accumulator fragments of 16 x 8 (64 f32 registers per thread).
// - Operands reach the tensor cores through ldmatrix: one instruction gives a warp the
//   fragments of a 16 x 16 block of A, or of two 16 x 8 blocks of B, from shared memory;
//   its .trans form reads operands stored the other way round, which is how one kernel
//   body serves every layout above. Shared tiles are XOR-swizzled (mma.cuh) so that those
//   reads are free of bank conflicts.
// - Global -> shared copies are cp.async: they bypass the registers and run in the
//   background. A ring of STAGES tiles along k keeps the copies of the next three slices
//   of k in flight while the tensor cores work on the current one (multi-buffering).
#include "matmul.cuh"
#include "mma_tiles.cuh"

#define BM 128
#define BN 128
#define BK 32
#define STAGES 4
#define THREADS 256
#define WARPS_N 4            // 8 warps: 2 along m x 4 along n
#define WM 64                // rows of C per warp
#define WN 32                // columns of C per warp
#define MI (WM / 16)         // m16 fragments per warp
#define NI (WN / 8)          // n8 fragments per warp
#define TILE (BM * BK)       // bf16 elements of one operand tile (BM == BN)
// The ring of operand tiles, then reused for the f32 output tile of the epilogue.
#define SMEM_BYTES (BM * (BN + TILE_PAD) * 4)
static_assert(STAGES * 2 * TILE * 2 <= SMEM_BYTES, "the ring fits in the output tile's room");

// One operand tile: 128 rows of m (or n) by BK of k. Stored as in global memory: k-major
// ([mn][k], BK / 8 chunks per row) or mn-major ([k][mn], 128 / 8 chunks per row).
template <bool K_MAJOR>
struct Tile {
    static constexpr u32 CHUNKS = K_MAJOR ? BK / 8 : BM / 8;

    // Starts the cp.async copies of the tile at (mn0, k0) of an operand with leading
    // dimension ld and extents (mn_end, k_end); chunks past the extents become zeros.
    static __device__ __forceinline__ void load(bf16* s, const bf16* g, u32 ld, u32 mn0,
                                                u32 mn_end, u32 k0, u32 k_end) {
#pragma unroll
        for (u32 c = threadIdx.x; c < TILE / 8; c += THREADS) {
            const u32 row = c / CHUNKS, chunk = c % CHUNKS;
            const u32 mn = K_MAJOR ? mn0 + row : mn0 + chunk * 8;
            const u32 k = K_MAJOR ? k0 + chunk * 8 : k0 + row;
            const bool valid = mn < mn_end && k < k_end;
            const u64 at = K_MAJOR ? (u64)mn * ld + k : (u64)k * ld + mn;
            cp_async16(s + swizzle<CHUNKS>(row, chunk), valid ? g + at : g, valid);
        }
    }

    // The A fragment of rows r0..r0+15, k0..k0+15 (A tiles).
    static __device__ __forceinline__ void frag_a(u32 (&a)[4], const bf16* s, u32 r0, u32 k0) {
        if (K_MAJOR) frag_a_mk<CHUNKS>(a, s, r0, k0);
        else frag_a_km<CHUNKS>(a, s, r0, k0);
    }

    // B fragments of columns n0..n0+15, k0..k0+15 (B tiles): two n8 fragments.
    static __device__ __forceinline__ void frag_b(u32 (&b)[4], const bf16* s, u32 n0, u32 k0) {
        if (K_MAJOR) frag_b_nk<CHUNKS>(b, s, n0, k0);
        else frag_b_kn<CHUNKS>(b, s, n0, k0);
    }
};

template <bool A_K_MAJOR, bool B_K_MAJOR>
__device__ void mma_matmul(Epilogue<bf16> ep, const bf16* a, const bf16* b, u32 m, u32 n, u32 k,
                           u32 lda, u32 ldb) {
    using TA = Tile<A_K_MAJOR>;
    using TB = Tile<B_K_MAJOR>;
    bf16* as = reinterpret_cast<bf16*>(dynamic_smem());  // STAGES A tiles, then B tiles
    bf16* bs = as + STAGES * TILE;
    u32 tile_m, tile_n;
    grouped_tile(blockIdx.x, (m + BM - 1) / BM, (n + BN - 1) / BN, tile_m, tile_n);
    const u32 m0 = tile_m * BM, n0 = tile_n * BN;
    const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const u32 wm = warp / WARPS_N * WM, wn = warp % WARPS_N * WN;
    const u32 tiles_k = (k + BK - 1) / BK;

    // Slice kt of k into ring slot kt % STAGES. Commits a group even when there is
    // nothing left to load, so that "group kt" is always slice kt for the waits below.
    auto load = [&](u32 kt) {
        if (kt < tiles_k) {
            const u32 slot = kt % STAGES;
            TA::load(as + slot * TILE, a, lda, m0, m, kt * BK, k);
            TB::load(bs + slot * TILE, b, ldb, n0, n, kt * BK, k);
        }
        cp_async_commit();
    };

    float acc[MI][NI][4] = {};
#pragma unroll
    for (u32 kt = 0; kt < STAGES - 1; kt++) load(kt);
    for (u32 kt = 0; kt < tiles_k; kt++) {
        // Slice kt has landed (for this thread; the barrier makes it everyone's), and
        // everyone is done with slice kt - 1, whose slot the next load reuses.
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        load(kt + STAGES - 1);
        const bf16* at = as + kt % STAGES * TILE;
        const bf16* bt = bs + kt % STAGES * TILE;
#pragma unroll
        for (u32 kk = 0; kk < BK; kk += 16) {
            u32 af[MI][4], bfr[NI / 2][4];
#pragma unroll
            for (u32 mi = 0; mi < MI; mi++) TA::frag_a(af[mi], at, wm + mi * 16, kk);
#pragma unroll
            for (u32 nj = 0; nj < NI / 2; nj++) TB::frag_b(bfr[nj], bt, wn + nj * 16, kk);
#pragma unroll
            for (u32 mi = 0; mi < MI; mi++)
#pragma unroll
                for (u32 ni = 0; ni < NI; ni++)
                    mma_bf16(acc[mi][ni], af[mi], bfr[ni / 2][(ni % 2) * 2],
                             bfr[ni / 2][(ni % 2) * 2 + 1]);
        }
    }

    // Stage the accumulators (fragment rows g and g + 8, columns 2t and 2t + 1) in shared
    // memory, over the ring, once everyone is done with it; then the epilogue.
    cp_async_wait<0>();
    __syncthreads();
    float* out = reinterpret_cast<float*>(dynamic_smem());
    const u32 g = lane / 4, t = lane % 4;
#pragma unroll
    for (u32 mi = 0; mi < MI; mi++)
#pragma unroll
        for (u32 ni = 0; ni < NI; ni++)
#pragma unroll
            for (u32 h = 0; h < 2; h++) {
                const u32 r = wm + mi * 16 + h * 8 + g, col = wn + ni * 8 + 2 * t;
                *reinterpret_cast<float2*>(out + r * (BN + TILE_PAD) + col) =
                    make_float2(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
            }
    __syncthreads();
    finish_tile<BM, BN>(ep, out, m0, n0, m, n, threadIdx.x, THREADS);
}

// Grid: one block per 128 x 128 tile of C; THREADS threads; SMEM_BYTES (68 KiB) of
// dynamic shared memory.
#define INSTANTIATE(NAME, A_K_MAJOR, B_K_MAJOR)                                              \
    extern "C" __global__ void __launch_bounds__(THREADS)                                    \
        matmul_v3_##NAME##_bf16(bf16* c, bf16* pre, const bf16* a, const bf16* b,            \
                                const bf16* bias, u32 m, u32 n, u32 k, u32 lda, u32 ldb,     \
                                u32 ldc, u32 flags) {                                        \
        mma_matmul<A_K_MAJOR, B_K_MAJOR>(Epilogue<bf16>{c, pre, bias, ldc, flags}, a, b, m, n, \
                                         k, lda, ldb);                                       \
    }
INSTANTIATE(nn, true, false)
INSTANTIATE(nt, true, true)
INSTANTIATE(tn, false, false)
