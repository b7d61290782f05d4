// Causal self-attention on the CUDA cores, one query (or key) row at a time: the readable
// reference beside attention_flash.cu, and the kernels for what that one does not cover
// (f32, head sizes other than 32, 64, 128) and for decoding against a KV cache. Same
// maths as gpt2-kernels/src/cpu/attention.rs: s_ij = q_i · k_j / sqrt(HS) for j <= i,
// out_i = sum_j softmax(s_i)_j v_j, lse_i = log sum_j e^{s_ij}.
//
// Every kernel runs one block of WARPS warps per row of one head. The warps split the
// other side (keys for a query, queries for a key) in interleaved chunks of 32, one per
// lane: a lane computes its row's dot products alone, then the warp broadcasts the
// resulting weights and accumulates value rows with the lanes along the head dimension
// (coalesced). Each warp keeps an online softmax (running max m and sum l) or partial
// gradient sums; at the end the warps' partials are merged in warp order through shared
// memory: deterministic, no atomics. Head size at most MAX_HS.
#include "common.cuh"

#define WARPS (BLOCK / WARP)
#define MAX_HS 256
#define PER_LANE (MAX_HS / WARP)  // head-dimension values a lane accumulates

// q · row[0..hs) with q in shared memory (every lane reads the same q element: broadcast).
template <typename T>
__device__ __forceinline__ float dot(const float* q, const T* row, u32 hs) {
    float s = 0.0f;
    for (u32 d = 0; d < hs; d++) s += q[d] * load(&row[d]);
    return s;
}

// acc[u] += w * row[lane + 32 u] for the lane's head-dimension values.
template <typename T>
__device__ __forceinline__ void axpy_lane(float (&acc)[PER_LANE], float w, const T* row, u32 hs) {
    const u32 lane = threadIdx.x % WARP;
#pragma unroll
    for (u32 u = 0; u < PER_LANE; u++)
        if (lane + u * WARP < hs) acc[u] += w * load(&row[lane + u * WARP]);
}

// Sums the warps' partial vectors part[w][0..hs) in warp order into thread d's element
// (d = threadIdx.x, threadIdx.x + BLOCK, ...), after they have been written.
__device__ __forceinline__ float sum_warps(float (*part)[MAX_HS], u32 d) {
    float s = 0.0f;
    for (u32 w = 0; w < WARPS; w++) s += part[w][d];
    return s;
}

// Writes a warp's per-lane vector to part[warp] (lane + 32 u).
__device__ __forceinline__ void stash_lane(float (*part)[MAX_HS], const float (&acc)[PER_LANE],
                                           u32 hs) {
    const u32 lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
#pragma unroll
    for (u32 u = 0; u < PER_LANE; u++)
        if (lane + u * WARP < hs) part[warp][lane + u * WARP] = acc[u];
}

// ---- forward (also decoding against a KV cache) ------------------------------------
// Block (i, h, b): query i of sequence b, head h, at absolute position pos0 + i, attends
// keys 0..pos0 + i. Row r of q / k / v / out of sequence b starts at
// x + b * x_bs + r * x_rs + h * hs. lse, if not null, is (B, NH, tq).
// pos0_at, if not null, holds pos0 on the device instead (a decoding step replayed from a
// CUDA graph: the position changes every replay), and kv_rows bounds it: queries past the
// kv_rows rows of k / v get NaN outputs, never an out-of-bounds read.
template <typename T>
__device__ void forward(T* out, float* lse, const T* q, const T* k, const T* v, u32 tq, u32 pos0,
                        const u32* pos0_at, u32 kv_rows, u32 hs, u32 q_rs, u32 kv_rs, u32 out_rs,
                        u64 q_bs, u64 kv_bs, u64 out_bs, float scale) {
    __shared__ float qs[MAX_HS];
    __shared__ float part_o[WARPS][MAX_HS];
    __shared__ float part_m[WARPS], part_l[WARPS];
    const u32 i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    if (pos0_at) {
        pos0 = *pos0_at;
        if (pos0 >= kv_rows || i >= kv_rows - pos0) {  // the whole block agrees: no barrier left
            T* orow = out + b * out_bs + (u64)i * out_rs + h * hs;
            for (u32 d = threadIdx.x; d < hs; d += BLOCK) store(&orow[d], NAN);
            return;
        }
    }
    const u32 pos = pos0 + i;
    const u32 lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    const T* qrow = q + b * q_bs + (u64)i * q_rs + h * hs;
    for (u32 d = threadIdx.x; d < hs; d += BLOCK) qs[d] = load(&qrow[d]) * scale;
    __syncthreads();
    const T* keys = k + b * kv_bs + h * hs;
    const T* values = v + b * kv_bs + h * hs;

    float o[PER_LANE] = {}, m = -INFINITY, l = 0.0f;
    for (u32 j0 = warp * WARP; j0 <= pos; j0 += WARPS * WARP) {
        const u32 j = j0 + lane;
        const bool live = j <= pos;
        const float s = live ? dot(qs, keys + (u64)j * kv_rs, hs) : -INFINITY;
        const float m_new = fmaxf(m, warp_max(s));  // finite: lane 0's key is live
        const float p = live ? expf(s - m_new) : 0.0f;
        const float alpha = expf(m - m_new);  // 0 on the first chunk (m = -inf)
        l = l * alpha + warp_sum(p);
#pragma unroll
        for (u32 u = 0; u < PER_LANE; u++) o[u] *= alpha;
        const u32 n = min((u32)WARP, pos - j0 + 1);
        for (u32 jj = 0; jj < n; jj++)
            axpy_lane(o, __shfl_sync(0xffffffffu, p, jj), values + (u64)(j0 + jj) * kv_rs, hs);
        m = m_new;
    }

    // Merge the warps' softmax states in warp order (an idle warp has m = -inf, l = 0).
    stash_lane(part_o, o, hs);
    if (lane == 0) part_m[warp] = m, part_l[warp] = l;
    __syncthreads();
    float mx = -INFINITY, sum = 0.0f;
    for (u32 w = 0; w < WARPS; w++) mx = fmaxf(mx, part_m[w]);
    for (u32 w = 0; w < WARPS; w++) sum += part_l[w] * expf(part_m[w] - mx);
    T* orow = out + b * out_bs + (u64)i * out_rs + h * hs;
    for (u32 d = threadIdx.x; d < hs; d += BLOCK) {
        float acc = 0.0f;
        for (u32 w = 0; w < WARPS; w++) acc += part_o[w][d] * expf(part_m[w] - mx);
        store(&orow[d], acc / sum);
    }
    if (lse && threadIdx.x == 0) lse[((u64)b * gridDim.y + h) * tq + i] = mx + logf(sum);
}

// Appends `rows` rows of `n` elements to a KV cache of `cap` rows at the row held on the
// device (for graph replays): cache[(*pos + r) n + e] = src[r n + e]; nothing when they
// would not fit.
template <typename T>
__device__ void cache_append(T* cache, const T* src, const u32* pos, u32 n, u32 rows, u32 cap) {
    const u32 at = *pos;
    if (at > cap || rows > cap - at) return;
    T* dst = cache + (u64)at * n;
    GRID_STRIDE(e, (u64)rows * n) dst[e] = src[e];
}

// ---- backward ------------------------------------------------------------------------
// qkv (B, T, 3C), dout / out (B, T, C), lse / dvec (B, NH, T); c = NH * hs.

// One warp per (row, head): dvec = dout · out, the softmax backward's row constant.
template <typename T>
__device__ void backward_d(float* dvec, const T* dout, const T* out, u32 rows, u32 t, u32 nh,
                           u32 hs) {
    const u32 r = blockIdx.x * WARPS + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (r >= rows) return;  // r = ((b * nh) + h) * t + i
    const u32 i = r % t, h = r / t % nh, b = r / t / nh;
    const u64 at = ((u64)b * t + i) * nh * hs + h * hs;
    float s = 0.0f;
    for (u32 d = lane; d < hs; d += WARP) s += load(&dout[at + d]) * load(&out[at + d]);
    s = warp_sum(s);
    if (lane == 0) dvec[r] = s;
}

// Block (i, h, b): dq_i += scale * sum_{j <= i} ds_ij k_j, ds_ij = p_ij (dout_i · v_j - D_i),
// p_ij = e^{s_ij - lse_i}.
template <typename T>
__device__ void backward_dq(T* dqkv, const T* dout, const T* qkv, const float* lse,
                            const float* dvec, u32 t, u32 hs, float scale) {
    __shared__ float qs[MAX_HS], dos[MAX_HS];
    __shared__ float part[WARPS][MAX_HS];
    const u32 i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, nh = gridDim.y, c = nh * hs;
    const u32 lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    const T* seq = qkv + (u64)b * t * 3 * c + h * hs;
    const u64 row = ((u64)b * nh + h) * t + i;
    for (u32 d = threadIdx.x; d < hs; d += BLOCK) {
        qs[d] = load(&seq[(u64)i * 3 * c + d]) * scale;
        dos[d] = load(&dout[((u64)b * t + i) * c + h * hs + d]);
    }
    __syncthreads();
    const float lse_i = lse[row], d_i = dvec[row];
    float dq[PER_LANE] = {};
    for (u32 j0 = warp * WARP; j0 <= i; j0 += WARPS * WARP) {
        const u32 j = j0 + lane;
        float ds = 0.0f;
        if (j <= i) {
            const float p = expf(dot(qs, seq + (u64)j * 3 * c + c, hs) - lse_i);
            ds = p * (dot(dos, seq + (u64)j * 3 * c + 2 * c, hs) - d_i);
        }
        const u32 n = min((u32)WARP, i - j0 + 1);
        for (u32 jj = 0; jj < n; jj++)
            axpy_lane(dq, __shfl_sync(0xffffffffu, ds, jj), seq + (u64)(j0 + jj) * 3 * c + c, hs);
    }
    stash_lane(part, dq, hs);
    __syncthreads();
    T* dst = dqkv + ((u64)b * t + i) * 3 * c + h * hs;
    for (u32 d = threadIdx.x; d < hs; d += BLOCK)
        store(&dst[d], load(&dst[d]) + scale * sum_warps(part, d));
}

// Block (j, h, b): dk_j += scale * sum_{i >= j} ds_ij q_i and dv_j += sum_{i >= j} p_ij dout_i.
template <typename T>
__device__ void backward_dkv(T* dqkv, const T* dout, const T* qkv, const float* lse,
                             const float* dvec, u32 t, u32 hs, float scale) {
    __shared__ float ks[MAX_HS], vs[MAX_HS];
    __shared__ float part_k[WARPS][MAX_HS], part_v[WARPS][MAX_HS];
    const u32 j = blockIdx.x, h = blockIdx.y, b = blockIdx.z, nh = gridDim.y, c = nh * hs;
    const u32 lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    const T* seq = qkv + (u64)b * t * 3 * c + h * hs;
    const T* grad = dout + (u64)b * t * c + h * hs;
    const u64 rows = ((u64)b * nh + h) * t;
    for (u32 d = threadIdx.x; d < hs; d += BLOCK) {
        ks[d] = load(&seq[(u64)j * 3 * c + c + d]) * scale;
        vs[d] = load(&seq[(u64)j * 3 * c + 2 * c + d]);
    }
    __syncthreads();
    float dk[PER_LANE] = {}, dv[PER_LANE] = {};
    for (u32 i0 = j + warp * WARP; i0 < t; i0 += WARPS * WARP) {
        const u32 i = i0 + lane;
        float p = 0.0f, ds = 0.0f;
        if (i < t) {
            p = expf(dot(ks, seq + (u64)i * 3 * c, hs) - lse[rows + i]);
            ds = p * (dot(vs, grad + (u64)i * c, hs) - dvec[rows + i]);
        }
        const u32 n = min((u32)WARP, t - i0);
        for (u32 ii = 0; ii < n; ii++) {
            axpy_lane(dv, __shfl_sync(0xffffffffu, p, ii), grad + (u64)(i0 + ii) * c, hs);
            axpy_lane(dk, __shfl_sync(0xffffffffu, ds, ii), seq + (u64)(i0 + ii) * 3 * c, hs);
        }
    }
    stash_lane(part_k, dk, hs);
    stash_lane(part_v, dv, hs);
    __syncthreads();
    T* dst = dqkv + ((u64)b * t + j) * 3 * c + h * hs;
    for (u32 d = threadIdx.x; d < hs; d += BLOCK) {
        store(&dst[c + d], load(&dst[c + d]) + scale * sum_warps(part_k, d));
        store(&dst[2 * c + d], load(&dst[2 * c + d]) + sum_warps(part_v, d));
    }
}

// forward: grid (tq, NH, B). cache_append: a grid-stride loop over rows * n.
// backward_d: grid ceil(B * NH * T / WARPS). backward_dq, backward_dkv: grid (T, NH, B).
// All BLOCK threads.
#define INSTANTIATE(T, S)                                                                   \
    extern "C" __global__ void __launch_bounds__(BLOCK) attention_forward_##S(             \
        T* out, float* lse, const T* q, const T* k, const T* v, u32 tq, u32 pos0,          \
        const u32* pos0_at, u32 kv_rows, u32 hs, u32 q_rs, u32 kv_rs, u32 out_rs, u64 q_bs, \
        u64 kv_bs, u64 out_bs, float scale) {                                               \
        forward(out, lse, q, k, v, tq, pos0, pos0_at, kv_rows, hs, q_rs, kv_rs, out_rs,     \
                q_bs, kv_bs, out_bs, scale);                                                \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(BLOCK) attention_cache_append_##S(        \
        T* cache, const T* src, const u32* pos, u32 n, u32 rows, u32 cap) {                 \
        cache_append(cache, src, pos, n, rows, cap);                                        \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(BLOCK) attention_backward_d_##S(          \
        float* dvec, const T* dout, const T* out, u32 rows, u32 t, u32 nh, u32 hs) {        \
        backward_d(dvec, dout, out, rows, t, nh, hs);                                       \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(BLOCK) attention_backward_dq_##S(         \
        T* dqkv, const T* dout, const T* qkv, const float* lse, const float* dvec, u32 t,  \
        u32 hs, float scale) {                                                              \
        backward_dq(dqkv, dout, qkv, lse, dvec, t, hs, scale);                              \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(BLOCK) attention_backward_dkv_##S(        \
        T* dqkv, const T* dout, const T* qkv, const float* lse, const float* dvec, u32 t,  \
        u32 hs, float scale) {                                                              \
        backward_dkv(dqkv, dout, qkv, lse, dvec, t, hs, scale);                             \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
