// Flash attention on the tensor cores (sm_80+, mma.sync): causal self-attention of bf16
// qkv (B, T, 3C) with f32 accumulation, head size HS in {32, 64, 128}; the same maths as
// attention.cu (its readable row-at-a-time reference) and gpt2-kernels/src/cpu/attention.rs.
//
// Forward (FlashAttention-2): a block owns BQ = 64 MT queries of one head, 16 MT per warp,
// and walks the blocks of 64 keys up to the diagonal. Per key block a warp computes its
// scores S = Q Kᵀ with mma.sync (Q's fragments stay in registers, K's come from shared
// memory through ldmatrix), updates its rows' running max m and sum l (online softmax:
// the rows' values live in the registers of the 4 lanes of a quad, so row reductions are
// two shuffles), rescales its output accumulators, and adds P V, feeding P straight from
// the score accumulators as the A operand (mma_tiles.cuh: acc_to_a). K and V tiles are
// double-buffered with cp.async. At the end out = O / l and lse = m + log l.
// Scores are kept in the log2 domain (scaled by log2 e) so that exponentials are exp2.
//
// Backward (recomputation from lse, deterministic without atomics), in two kernels that
// each own their outputs:
//   dkdv: a block owns 64 keys (16 per warp) and walks the query blocks from the diagonal
//     on: Pᵀ = exp(K Qᵀ - lse), dV += Pᵀ dO, dPᵀ = V dOᵀ, dSᵀ = Pᵀ (dPᵀ - D), dK += dSᵀ Q.
//   dq: a block owns 64 queries (16 per warp) and walks the key blocks up to the diagonal:
//     P = exp(Q Kᵀ - lse), dP = dO Vᵀ, dS = P (dP - D), dQ += dS K.
// D = rowsum(dO ∘ O) comes from attention.cu's attention_backward_d. Each element of dQ,
// dK, dV is summed by one thread in a fixed order. The price of no atomics is computing
// S and dP twice (7 products per block pair instead of FlashAttention-2's 5).
#include "mma_tiles.cuh"

#define THREADS 128  // 4 warps
#define BKV 64       // rows of a key (or query) block in the backward and keys in the forward
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

// Starts copying rows row0..row0+ROWS of a head's (T, HS) slice g (row stride rs) into a
// swizzled tile; rows at or past rows_end become zeros.
template <u32 ROWS, u32 HS>
__device__ __forceinline__ void load_rows(bf16* s, const bf16* g, u32 rs, u32 row0, u32 rows_end) {
    constexpr u32 CH = HS / 8;
#pragma unroll
    for (u32 i = threadIdx.x; i < ROWS * CH; i += THREADS) {
        const u32 r = i / CH, ch = i % CH;
        const bool valid = row0 + r < rows_end;
        cp_async16(s + swizzle<CH>(r, ch), valid ? g + (u64)(row0 + r) * rs + ch * 8 : g, valid);
    }
}

// Starts copying 64 per-row f32 statistics from row0 (zeros at or past rows_end).
__device__ __forceinline__ void load_stats(float* s, const float* g, u32 row0, u32 rows_end) {
    for (u32 r = threadIdx.x; r < BKV; r += THREADS)
        cp_async4(s + r, row0 + r < rows_end ? g + row0 + r : g, row0 + r < rows_end);
}

// Rows g and g + 8 of a quad's accumulators: the max over the quad's lanes.
__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// acc (16 x 64, 8 n8 fragments) += A (16 x HS, rows r0.. of tile a, stored [row][d]) ·
// Bᵀ where B (64 x HS) is tile b stored [row][d]: the scores of 16 rows against 64 rows.
template <u32 HS>
__device__ __forceinline__ void rows_dot_rows(float (&acc)[8][4], const bf16* a, u32 r0,
                                              const bf16* b) {
#pragma unroll
    for (u32 ks = 0; ks < HS / 16; ks++) {
        u32 af[4];
        frag_a_mk<HS / 8>(af, a, r0, ks * 16);
#pragma unroll
        for (u32 nj = 0; nj < 4; nj++) {
            u32 bf[4];
            frag_b_nk<HS / 8>(bf, b, nj * 16, ks * 16);
            mma_bf16(acc[2 * nj], af, bf[0], bf[1]);
            mma_bf16(acc[2 * nj + 1], af, bf[2], bf[3]);
        }
    }
}

// acc (16 x HS) += P (16 x 64, accumulator layout, rounded to bf16) · V (64 x HS, tile v
// stored [row][d]).
template <u32 HS>
__device__ __forceinline__ void weights_times_rows(float (&acc)[HS / 8][4], const float (&p)[8][4],
                                                   const bf16* v) {
#pragma unroll
    for (u32 kk = 0; kk < 4; kk++) {
        u32 pa[4];
        acc_to_a(pa, p[2 * kk], p[2 * kk + 1]);
#pragma unroll
        for (u32 dj = 0; dj < HS / 16; dj++) {
            u32 bf[4];
            frag_b_kn<HS / 8>(bf, v, dj * 16, kk * 16);
            mma_bf16(acc[2 * dj], pa, bf[0], bf[1]);
            mma_bf16(acc[2 * dj + 1], pa, bf[2], bf[3]);
        }
    }
}

// dst[row][col, col + 1] += scale * (x, y) for a bf16 pair.
__device__ __forceinline__ void add_pair(bf16* dst, float scale, float x, float y) {
    store2(dst, load(&dst[0]) + scale * x, load(&dst[1]) + scale * y);
}

// ---- forward -------------------------------------------------------------------------
// Grid (ceil(T / BQ), NH, B); THREADS threads; (BQ + 4 BKV) HS bf16 of dynamic shared
// memory. out (B, T, C), lse (B, NH, T).
template <u32 HS, u32 MT>
__device__ void flash_forward(bf16* out, float* lse, const bf16* qkv, u32 t, float scale) {
    constexpr u32 CH = HS / 8, DN = HS / 8, BQ = 64 * MT;
    bf16* sq = reinterpret_cast<bf16*>(dynamic_smem());  // BQ x HS
    bf16* skv = sq + BQ * HS;                            // 2 slots of K then V, BKV x HS each
    const u32 nh = gridDim.y, h = blockIdx.y, b = blockIdx.z, c = nh * HS, rs = 3 * c;
    const u32 q0 = (gridDim.x - 1 - blockIdx.x) * BQ;  // the longest rows first
    const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const u32 wr = warp * 16 * MT;  // the warp's first row in the block
    const bf16* seq = qkv + (u64)b * t * rs + h * HS;
    const float sl2 = scale * LOG2E;
    const u32 n_kb = (min(q0 + BQ, t) - 1) / BKV + 1;
    auto load_kv = [&](u32 kb) {
        bf16* slot = skv + kb % 2 * 2 * BKV * HS;
        load_rows<BKV, HS>(slot, seq + c, rs, kb * BKV, t);
        load_rows<BKV, HS>(slot + BKV * HS, seq + 2 * c, rs, kb * BKV, t);
    };
    load_rows<BQ, HS>(sq, seq, rs, q0, t);
    load_kv(0);
    cp_async_commit();

    u32 qf[MT][HS / 16][4];
    float o[MT][DN][4] = {}, m[MT][2], l[MT][2];
#pragma unroll
    for (u32 mt = 0; mt < MT; mt++) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
    for (u32 kb = 0; kb < n_kb; kb++) {
        if (kb + 1 < n_kb) load_kv(kb + 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        if (kb == 0) {
#pragma unroll
            for (u32 mt = 0; mt < MT; mt++)
#pragma unroll
                for (u32 ks = 0; ks < HS / 16; ks++)
                    frag_a_mk<CH>(qf[mt][ks], sq, wr + mt * 16, ks * 16);
        }
        const bf16* kt = skv + kb % 2 * 2 * BKV * HS;
        const bf16* vt = kt + BKV * HS;
        // Skip key blocks that lie wholly after the warp's last row (warp-uniform).
        if (kb * BKV <= q0 + wr + 16 * MT - 1) {
            float s[MT][8][4] = {};
#pragma unroll
            for (u32 ks = 0; ks < HS / 16; ks++)
#pragma unroll
                for (u32 nj = 0; nj < 4; nj++) {
                    u32 kf[4];
                    frag_b_nk<CH>(kf, kt, nj * 16, ks * 16);
#pragma unroll
                    for (u32 mt = 0; mt < MT; mt++) {
                        mma_bf16(s[mt][2 * nj], qf[mt][ks], kf[0], kf[1]);
                        mma_bf16(s[mt][2 * nj + 1], qf[mt][ks], kf[2], kf[3]);
                    }
                }
            // Some key of the block after some row of the warp: mask element by element.
            const bool diagonal = kb * BKV + BKV - 1 > q0 + wr;
#pragma unroll
            for (u32 mt = 0; mt < MT; mt++)
#pragma unroll
                for (u32 r = 0; r < 2; r++) {
                    const u32 row = q0 + wr + mt * 16 + g + r * 8;
                    float mx = -INFINITY;
#pragma unroll
                    for (u32 ni = 0; ni < 8; ni++)
#pragma unroll
                        for (u32 e = 2 * r; e < 2 * r + 2; e++) {
                            const u32 key = kb * BKV + ni * 8 + 2 * tq + e % 2;
                            float x = s[mt][ni][e] * sl2;
                            if (diagonal && key > row) x = -INFINITY;
                            s[mt][ni][e] = x;
                            mx = fmaxf(mx, x);
                        }
                    // Finite: key 0 of block 0 is visible to every row, so m is finite from
                    // the first block on.
                    const float m_new = fmaxf(m[mt][r], quad_max(mx));
                    const float alpha = exp2f(m[mt][r] - m_new);
                    m[mt][r] = m_new;
                    l[mt][r] *= alpha;
#pragma unroll
                    for (u32 dn = 0; dn < DN; dn++) {
                        o[mt][dn][2 * r] *= alpha;
                        o[mt][dn][2 * r + 1] *= alpha;
                    }
#pragma unroll
                    for (u32 ni = 0; ni < 8; ni++)
#pragma unroll
                        for (u32 e = 2 * r; e < 2 * r + 2; e++) {
                            const float p = exp2f(s[mt][ni][e] - m_new);
                            s[mt][ni][e] = p;
                            l[mt][r] += p;  // this lane's share; the quad's sum at the end
                        }
                }
#pragma unroll
            for (u32 mt = 0; mt < MT; mt++) weights_times_rows<HS>(o[mt], s[mt], vt);
        }
        __syncthreads();  // before the next iteration's copies overwrite this slot
    }

#pragma unroll
    for (u32 mt = 0; mt < MT; mt++)
#pragma unroll
        for (u32 r = 0; r < 2; r++) {
            const float sum = quad_sum(l[mt][r]);
            const u32 row = q0 + wr + mt * 16 + g + r * 8;
            if (row >= t) continue;
            bf16* dst = out + ((u64)b * t + row) * c + h * HS + 2 * tq;
#pragma unroll
            for (u32 dn = 0; dn < DN; dn++)
                store2(dst + dn * 8, o[mt][dn][2 * r] / sum, o[mt][dn][2 * r + 1] / sum);
            if (tq == 0) lse[((u64)b * nh + h) * t + row] = (m[mt][r] + log2f(sum)) * LN2;
        }
}

// ---- backward: dK, dV ----------------------------------------------------------------
// Grid (ceil(T / BKV), NH, B); THREADS threads; 6 BKV HS bf16 + 4 BKV f32 of dynamic
// shared memory. dqkv (B, T, 3C) accumulates; dout (B, T, C); lse, dvec (B, NH, T).
template <u32 HS>
__device__ void flash_backward_dkdv(bf16* dqkv, const bf16* dout, const bf16* qkv,
                                    const float* lse, const float* dvec, u32 t, float scale) {
    constexpr u32 DN = HS / 8, TILE = BKV * HS;
    bf16* sk = reinterpret_cast<bf16*>(dynamic_smem());
    bf16* sv = sk + TILE;
    bf16* sqd = sv + TILE;                                       // 2 slots of Q then dO
    float* stats = reinterpret_cast<float*>(sqd + 4 * TILE);      // 2 slots of lse then D
    const u32 nh = gridDim.y, h = blockIdx.y, b = blockIdx.z, c = nh * HS, rs = 3 * c;
    const u32 k0 = blockIdx.x * BKV, n_qb = (t + BKV - 1) / BKV;
    const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const bf16* seq = qkv + (u64)b * t * rs + h * HS;
    const bf16* grad = dout + (u64)b * t * c + h * HS;
    const u64 row_stats = ((u64)b * nh + h) * t;
    const float sl2 = scale * LOG2E;
    auto load_q = [&](u32 qb) {
        const u32 slot = (qb - blockIdx.x) % 2;
        load_rows<BKV, HS>(sqd + slot * 2 * TILE, seq, rs, qb * BKV, t);
        load_rows<BKV, HS>(sqd + slot * 2 * TILE + TILE, grad, c, qb * BKV, t);
        load_stats(stats + slot * 2 * BKV, lse + row_stats, qb * BKV, t);
        load_stats(stats + slot * 2 * BKV + BKV, dvec + row_stats, qb * BKV, t);
    };
    load_rows<BKV, HS>(sk, seq + c, rs, k0, t);
    load_rows<BKV, HS>(sv, seq + 2 * c, rs, k0, t);
    load_q(blockIdx.x);
    cp_async_commit();

    float dk[DN][4] = {}, dv[DN][4] = {};
    for (u32 qb = blockIdx.x; qb < n_qb; qb++) {
        if (qb + 1 < n_qb) load_q(qb + 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const u32 slot = (qb - blockIdx.x) % 2;
        const bf16* sq = sqd + slot * 2 * TILE;
        const bf16* sdo = sq + TILE;
        const float* slse = stats + slot * 2 * BKV;
        const float* sd = slse + BKV;
        // Pᵀ (16 keys x 64 queries): e^{s - lse} where the query sees the key, else 0.
        float p[8][4] = {};
        rows_dot_rows<HS>(p, sk, warp * 16, sq);
#pragma unroll
        for (u32 ni = 0; ni < 8; ni++)
#pragma unroll
            for (u32 e = 0; e < 4; e++) {
                const u32 key = k0 + warp * 16 + g + e / 2 * 8, qi = ni * 8 + 2 * tq + e % 2;
                const u32 query = qb * BKV + qi;
                p[ni][e] = query < t && query >= key ? exp2f(p[ni][e] * sl2 - slse[qi] * LOG2E)
                                                     : 0.0f;
            }
        weights_times_rows<HS>(dv, p, sdo);
        // dSᵀ = Pᵀ (dPᵀ - D), dPᵀ = V dOᵀ.
        float ds[8][4] = {};
        rows_dot_rows<HS>(ds, sv, warp * 16, sdo);
#pragma unroll
        for (u32 ni = 0; ni < 8; ni++)
#pragma unroll
            for (u32 e = 0; e < 4; e++)
                ds[ni][e] = p[ni][e] * (ds[ni][e] - sd[ni * 8 + 2 * tq + e % 2]);
        weights_times_rows<HS>(dk, ds, sq);
        __syncthreads();
    }

#pragma unroll
    for (u32 r = 0; r < 2; r++) {
        const u32 key = k0 + warp * 16 + g + r * 8;
        if (key >= t) continue;
        bf16* dst = dqkv + ((u64)b * t + key) * rs + c + h * HS + 2 * tq;
#pragma unroll
        for (u32 dn = 0; dn < DN; dn++) {
            add_pair(dst + dn * 8, scale, dk[dn][2 * r], dk[dn][2 * r + 1]);
            add_pair(dst + c + dn * 8, 1.0f, dv[dn][2 * r], dv[dn][2 * r + 1]);
        }
    }
}

// ---- backward: dQ --------------------------------------------------------------------
// Grid (ceil(T / BKV), NH, B); THREADS threads; 6 BKV HS bf16 of dynamic shared memory.
template <u32 HS>
__device__ void flash_backward_dq(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse,
                                  const float* dvec, u32 t, float scale) {
    constexpr u32 DN = HS / 8, TILE = BKV * HS;
    bf16* sq = reinterpret_cast<bf16*>(dynamic_smem());  // Q, dO, then 2 slots of K then V
    bf16* sdo = sq + TILE;
    bf16* skv = sdo + TILE;
    const u32 nh = gridDim.y, h = blockIdx.y, b = blockIdx.z, c = nh * HS, rs = 3 * c;
    const u32 qb = gridDim.x - 1 - blockIdx.x, q0 = qb * BKV;  // the longest rows first
    const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const bf16* seq = qkv + (u64)b * t * rs + h * HS;
    const u64 row_stats = ((u64)b * nh + h) * t;
    const float sl2 = scale * LOG2E;
    auto load_kv = [&](u32 kb) {
        bf16* slot = skv + kb % 2 * 2 * TILE;
        load_rows<BKV, HS>(slot, seq + c, rs, kb * BKV, t);
        load_rows<BKV, HS>(slot + TILE, seq + 2 * c, rs, kb * BKV, t);
    };
    load_rows<BKV, HS>(sq, seq, rs, q0, t);
    load_rows<BKV, HS>(sdo, dout + (u64)b * t * c + h * HS, c, q0, t);
    load_kv(0);
    cp_async_commit();
    float lse_r[2], d_r[2];  // rows g and g + 8 of the warp (log2 domain for lse)
#pragma unroll
    for (u32 r = 0; r < 2; r++) {
        const u32 row = q0 + warp * 16 + g + r * 8;
        lse_r[r] = row < t ? lse[row_stats + row] * LOG2E : 0.0f;
        d_r[r] = row < t ? dvec[row_stats + row] : 0.0f;
    }

    float dq[DN][4] = {};
    for (u32 kb = 0; kb <= qb; kb++) {
        if (kb + 1 <= qb) load_kv(kb + 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const bf16* kt = skv + kb % 2 * 2 * TILE;
        const bf16* vt = kt + TILE;
        float p[8][4] = {}, ds[8][4] = {};
        rows_dot_rows<HS>(p, sq, warp * 16, kt);
        rows_dot_rows<HS>(ds, sdo, warp * 16, vt);
#pragma unroll
        for (u32 ni = 0; ni < 8; ni++)
#pragma unroll
            for (u32 e = 0; e < 4; e++) {
                const u32 key = kb * BKV + ni * 8 + 2 * tq + e % 2;
                const u32 row = q0 + warp * 16 + g + e / 2 * 8;
                const bool live = kb < qb || key <= row;
                const float pe = live ? exp2f(p[ni][e] * sl2 - lse_r[e / 2]) : 0.0f;
                ds[ni][e] = pe * (ds[ni][e] - d_r[e / 2]);
            }
        weights_times_rows<HS>(dq, ds, kt);
        __syncthreads();
    }

#pragma unroll
    for (u32 r = 0; r < 2; r++) {
        const u32 row = q0 + warp * 16 + g + r * 8;
        if (row >= t) continue;
        bf16* dst = dqkv + ((u64)b * t + row) * rs + h * HS + 2 * tq;
#pragma unroll
        for (u32 dn = 0; dn < DN; dn++)
            add_pair(dst + dn * 8, scale, dq[dn][2 * r], dq[dn][2 * r + 1]);
    }
}

// MT (16-row groups per warp in the forward): 2 where registers allow (HS <= 64).
#define INSTANTIATE(HS)                                                                      \
    extern "C" __global__ void __launch_bounds__(THREADS) attention_flash_forward_hs##HS##_bf16( \
        bf16* out, float* lse, const bf16* qkv, u32 t, float scale) {                        \
        flash_forward<HS, HS <= 64 ? 2 : 1>(out, lse, qkv, t, scale);                        \
    }                                                                                        \
    extern "C" __global__ void __launch_bounds__(THREADS)                                    \
        attention_flash_backward_dkdv_hs##HS##_bf16(bf16* dqkv, const bf16* dout,             \
                                                    const bf16* qkv, const float* lse,       \
                                                    const float* dvec, u32 t, float scale) { \
        flash_backward_dkdv<HS>(dqkv, dout, qkv, lse, dvec, t, scale);                       \
    }                                                                                        \
    extern "C" __global__ void __launch_bounds__(THREADS)                                    \
        attention_flash_backward_dq_hs##HS##_bf16(bf16* dqkv, const bf16* dout,               \
                                                  const bf16* qkv, const float* lse,         \
                                                  const float* dvec, u32 t, float scale) {   \
        flash_backward_dq<HS>(dqkv, dout, qkv, lse, dvec, t, scale);                         \
    }
INSTANTIATE(32)
INSTANTIATE(64)
INSTANTIATE(128)
