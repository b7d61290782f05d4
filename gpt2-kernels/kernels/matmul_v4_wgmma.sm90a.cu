// Matmul, step 4 of the ladder: Hopper's warpgroup tensor-core instructions (wgmma) fed
// by the bulk tensor copy engine (TMA). sm_90a only: the host loads this module on
// compute capability 9.0 and checks it against step 3 before it uses it.
//
// Same product, layouts (nn, nt, tn), requirements and epilogue as step 3
// (matmul_v3_mma.cu); what changes:
// - wgmma: one instruction is a 64 x 128 x 16 product for a warpgroup of 4 warps, its
//   operands read by the tensor cores straight from shared memory (no ldmatrix, no
//   registers for A and B), and it runs asynchronously: the warps issue a whole slice of
//   k and then wait once.
// - TMA: one thread copies a whole 2-D box of an operand into shared memory with one
//   instruction, in the 128-byte-swizzled layout wgmma reads (hopper.cuh), zero-filling
//   what lies past the matrix edges; completion is counted in bytes on a transaction
//   barrier (mbarrier). No thread spends registers or instructions on addresses.
//   (The instructions are in hopper.cuh; the layout they agree on is below.)
// - Warp specialisation: warpgroup 0 only issues copies (one thread), warpgroups 1 and 2
//   only compute, each on 64 rows of the block's BM x BN tile. They meet at two barriers
//   per slot of a STAGES-deep ring: `full` (the copy engine delivered the slot's bytes)
//   and `empty` (both consumers finished reading it). setmaxnreg moves registers from
//   the producer (which needs few) to the consumers (BN = 256: 128 accumulators each).
// The tile is 128 x 256 on large problems and 128 x 128 when 128 x 256 tiles would not
// fill the GPU (the host chooses).
#include "hopper.cuh"
#include "matmul.cuh"

// Shared-memory layout contract between TMA and wgmma (PTX ISA, "Shared Memory Matrix
// Layout", 128-byte swizzle): a TMA box whose inner dimension is 64 bf16 (128 bytes),
// copied with CU_TENSOR_MAP_SWIZZLE_128B into a 1024-byte aligned buffer, lands as rows
// of 128 bytes whose 16-byte chunks are XOR-ed with (row % 8). wgmma reads such a buffer
// through a matrix descriptor (wgmma_desc below):
//   K-major operand (rows = m or n, 64 values of k per row): 8-row groups are SBO = 1024
//     bytes apart, LBO is unused; the k-step of 16 values is +32 bytes of start address.
//   MN-major operand (rows = k, 64 values of m or n per row, one box per 64 of m or n):
//     8-row groups of k are SBO = 1024 bytes apart, and the boxes of 64 m or n values
//     LBO bytes apart (8192: 64 rows of 128 bytes); the k-step is +16 rows = 2048 bytes.
__device__ __forceinline__ u64 wgmma_desc(const void* p, u32 lbo, u32 sbo) {
    auto enc = [](u32 x) { return (u64)((x & 0x3FFFF) >> 4); };
    return enc(smem_addr(p)) | enc(lbo) << 16 | enc(sbo) << 32 | 1ull << 62;  // 128B swizzle
}

#define BM 128
#define BK 64                      // one 128-byte swizzle row of bf16
#define STAGES 4
#define THREADS 384                // warpgroup 0 produces, 1 and 2 consume
#define BOX_BYTES (64 * 64 * 2)    // a 64 x 64 box: 64 rows of 128 bytes
#define A_BYTES (BM * BK * 2)      // 16 KiB per slot
#define SMEM_BYTES(BN) (STAGES * (A_BYTES + (BN) * BK * 2) + 1024)  // + alignment slack

// Slot layout, A then B. A stored (m, k) ("n", K-major): one box of 128 rows (m) of 64 k.
// A stored (k, m) ("t", M-major): two boxes of 64 rows (k) of 64 m, 8 KiB apart. B stored
// (n, k) ("t", K-major): one box of BN rows (n). B stored (k, n) ("n", N-major): BN / 64
// boxes of 64 rows (k) of 64 n. Either way consumer c's 64 rows of A start at c * 8 KiB
// and B's columns 128 j.. at 2 j * 8 KiB.
// The f32 output tile of the epilogue fits in the ring it reuses.
static_assert(BM * (128 + TILE_PAD) * 4 <= SMEM_BYTES(128) - 1024, "staging, BN = 128");
static_assert(BM * (256 + TILE_PAD) * 4 <= SMEM_BYTES(256) - 1024, "staging, BN = 256");

template <bool A_T, bool B_T, u32 BN>
__device__ void wgmma_matmul(const TensorMap* tma_a, const TensorMap* tma_b, Epilogue<bf16> ep,
                             u32 m, u32 n, u32 k) {
    constexpr u32 B_BYTES = BN * BK * 2, SLOT = A_BYTES + B_BYTES;
    __shared__ __align__(8) u64 full[STAGES], empty[STAGES];
    unsigned char* tiles = dynamic_smem();
    tiles += (1024 - smem_addr(tiles) % 1024) % 1024;  // swizzle atoms are 1024-aligned
    u32 tile_m, tile_n;
    grouped_tile(blockIdx.x, (m + BM - 1) / BM, (n + BN - 1) / BN, tile_m, tile_n);
    const u32 m0 = tile_m * BM, n0 = tile_n * BN;
    const u32 tiles_k = (k + BK - 1) / BK;

    if (threadIdx.x == 0) {
        for (u32 s = 0; s < STAGES; s++) {
            mbar_init(&full[s], 1);  // the producer's arrive.expect_tx (plus the bytes)
            mbar_init(&empty[s], 8);  // one arrival per consumer warp
        }
        mbar_fence_init();
    }
    __syncthreads();

    if (threadIdx.x < 128) {  // producer warpgroup
        setmaxnreg_dec<40>();
        if (threadIdx.x != 0) return;
        for (u32 kt = 0; kt < tiles_k; kt++) {
            const u32 s = kt % STAGES, k0 = kt * BK;
            // Round r of a slot waits for the consumers' release of round r - 1 (the
            // "previous" phase of a fresh barrier counts as complete: round 0 goes on).
            mbar_wait(&empty[s], (kt / STAGES + 1) % 2);
            mbar_arrive_expect_tx(&full[s], SLOT);
            unsigned char* a = tiles + s * SLOT;
            unsigned char* b = a + A_BYTES;
            if (A_T) {
                for (u32 c = 0; c < BM / 64; c++)
                    tma_load_2d(a + c * BOX_BYTES, tma_a, m0 + c * 64, k0, &full[s]);
            } else {
                tma_load_2d(a, tma_a, k0, m0, &full[s]);
            }
            if (B_T) {
                tma_load_2d(b, tma_b, k0, n0, &full[s]);
            } else {
                for (u32 c = 0; c < BN / 64; c++)
                    tma_load_2d(b + c * BOX_BYTES, tma_b, n0 + c * 64, k0, &full[s]);
            }
        }
        return;
    }

    setmaxnreg_inc<232>();
    const u32 c = threadIdx.x / 128 - 1;  // consumer 0 or 1: rows 64 c.. of the tile
    float d[BN / 128][64];
#pragma unroll
    for (u32 j = 0; j < BN / 128; j++)
#pragma unroll
        for (u32 i = 0; i < 64; i++) d[j][i] = 0.0f;
    for (u32 kt = 0; kt < tiles_k; kt++) {
        const u32 s = kt % STAGES;
        mbar_wait(&full[s], kt / STAGES % 2);
        const unsigned char* a = tiles + s * SLOT + c * BOX_BYTES;
        const unsigned char* b = tiles + s * SLOT + A_BYTES;
        wgmma_fence();
#pragma unroll
        for (u32 kk = 0; kk < BK / 16; kk++) {
            // k-step of 16: +32 bytes along a K-major row, +16 rows (2 KiB) of an MN-major box.
            const u64 da = A_T ? wgmma_desc(a + kk * 2048, BOX_BYTES, 1024)
                               : wgmma_desc(a + kk * 32, 16, 1024);
#pragma unroll
            for (u32 j = 0; j < BN / 128; j++) {
                const unsigned char* bj = b + 2 * j * BOX_BYTES;
                const u64 db = B_T ? wgmma_desc(bj + kk * 32, 16, 1024)
                                   : wgmma_desc(bj + kk * 2048, BOX_BYTES, 1024);
                wgmma_m64n128k16<A_T, !B_T>(d[j], da, db, 1);
            }
        }
        wgmma_commit();
        wgmma_wait<0>();
        __syncwarp();
        if (threadIdx.x % 32 == 0) mbar_arrive(&empty[s]);
    }

    // Stage the accumulators in shared memory, over the ring once both consumers are done
    // with it (the producer has exited: a barrier of the 256 consumer threads), then the
    // epilogue. d[j][4 i + 2 h + e] is row 16 w + l / 4 + 8 h, column 128 j + 8 i + 2 (l % 4)
    // + e of the consumer's 64 rows.
    named_barrier(1, 256);
    float* out = reinterpret_cast<float*>(tiles);
    const u32 w = threadIdx.x / 32 % 4, l = threadIdx.x % 32;
#pragma unroll
    for (u32 j = 0; j < BN / 128; j++)
#pragma unroll
        for (u32 i = 0; i < 16; i++)
#pragma unroll
            for (u32 h = 0; h < 2; h++) {
                const u32 row = c * 64 + w * 16 + l / 4 + h * 8;
                const u32 col = j * 128 + i * 8 + (l % 4) * 2;
                *reinterpret_cast<float2*>(out + row * (BN + TILE_PAD) + col) =
                    make_float2(d[j][4 * i + 2 * h], d[j][4 * i + 2 * h + 1]);
            }
    named_barrier(1, 256);
    finish_tile<BM, BN>(ep, out, m0, n0, m, n, threadIdx.x - 128, 256);
}

// Grid: one block per BM x BN tile of C; THREADS threads; SMEM_BYTES(BN) of dynamic
// shared memory. tma_a / tma_b: bf16 tensor maps with 128-byte swizzle and the boxes
// described above the kernel.
#define INSTANTIATE(NAME, A_T, B_T, BN)                                                       \
    extern "C" __global__ void __launch_bounds__(THREADS, 1) matmul_v4_##NAME##_bn##BN##_bf16( \
        const __grid_constant__ TensorMap tma_a, const __grid_constant__ TensorMap tma_b,     \
        bf16* c, bf16* pre, const bf16* bias, u32 m, u32 n, u32 k, u32 ldc, u32 flags) {      \
        wgmma_matmul<A_T, B_T, BN>(&tma_a, &tma_b, Epilogue<bf16>{c, pre, bias, ldc, flags}, \
                                   m, n, k);                                                  \
    }
INSTANTIATE(nn, false, false, 128)
INSTANTIATE(nt, false, true, 128)
INSTANTIATE(tn, true, false, 128)
INSTANTIATE(nn, false, false, 256)
INSTANTIATE(nt, false, true, 256)
INSTANTIATE(tn, true, false, 256)
