// Layer normalisation over rows of C, as gpt2-kernels/src/cpu/layernorm.rs: biased
// variance by two passes, eps inside the square root.
//   forward:  out = (x - mean) * rstd * weight + bias, saving mean and rstd per row
//   backward: dinp += ..., dweight += sum_n dout * xhat, dbias += sum_n dout
// dweight/dbias are sums over all rows. Without atomics: backward_* writes one partial
// sum per group of ROWS rows, backward_reduce_* adds the partials in group order.
#include "common.cuh"

#define EPS 1e-5f
// Rows per block in the backward: the unit of its dweight/dbias reduction.
#define ROWS 32

// One warp per row, BLOCK / WARP rows per block.
template <typename T>
__device__ void forward(T* out, float* mean, float* rstd, const T* inp, const T* weight,
                        const T* bias, u32 n_rows, u32 c) {
    const u32 row = blockIdx.x * (BLOCK / WARP) + threadIdx.x / WARP;
    const u32 lane = threadIdx.x % WARP;
    if (row >= n_rows) return;
    const T* x = inp + (u64)row * c;
    float sum = 0.0f;
    for (u32 j = lane; j < c; j += WARP) sum += load(&x[j]);
    const float mu = warp_sum(sum) / c;
    float sq = 0.0f;
    for (u32 j = lane; j < c; j += WARP) {
        const float d = load(&x[j]) - mu;
        sq += d * d;
    }
    const float rs = 1.0f / sqrtf(warp_sum(sq) / c + EPS);
    T* o = out + (u64)row * c;
    for (u32 j = lane; j < c; j += WARP)
        store(&o[j], (load(&x[j]) - mu) * rs * load(&weight[j]) + load(&bias[j]));
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

// Block b handles rows [b * ROWS, b * ROWS + ROWS). Partial sums: (gridDim.x, C) each.
template <typename T>
__device__ void backward(T* dinp, float* part_dweight, float* part_dbias, const T* dout,
                         const T* inp, const T* weight, const float* mean, const float* rstd,
                         u32 n_rows, u32 c) {
    __shared__ float s_dnorm_mean[ROWS], s_dnorm_xhat_mean[ROWS];
    const u32 first = blockIdx.x * ROWS;
    const u32 rows = min(ROWS, n_rows - first);
    const u32 lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    // 1. Per row: mean(weight * dout) and mean(weight * dout * xhat), one warp per row.
    for (u32 r = warp; r < rows; r += BLOCK / WARP) {
        const u64 base = (u64)(first + r) * c;
        const float mu = mean[first + r], rs = rstd[first + r];
        float a = 0.0f, b = 0.0f;
        for (u32 j = lane; j < c; j += WARP) {
            const float dnorm = load(&weight[j]) * load(&dout[base + j]);
            a += dnorm;
            b += dnorm * (load(&inp[base + j]) - mu) * rs;
        }
        a = warp_sum(a);
        b = warp_sum(b);
        if (lane == 0) {
            s_dnorm_mean[r] = a / c;
            s_dnorm_xhat_mean[r] = b / c;
        }
    }
    __syncthreads();
    // 2. Per column: dinp for every row of the group, and the group's partial sums,
    //    adding the rows in increasing order.
    for (u32 j = threadIdx.x; j < c; j += BLOCK) {
        const float w = load(&weight[j]);
        float dw = 0.0f, db = 0.0f;
        for (u32 r = 0; r < rows; r++) {
            const u64 i = (u64)(first + r) * c + j;
            const float rs = rstd[first + r];
            const float xhat = (load(&inp[i]) - mean[first + r]) * rs;
            const float g = load(&dout[i]);
            const float dnorm = w * g;
            store(&dinp[i],
                  load(&dinp[i]) + (dnorm - s_dnorm_mean[r] - xhat * s_dnorm_xhat_mean[r]) * rs);
            dw += g * xhat;
            db += g;
        }
        part_dweight[(u64)blockIdx.x * c + j] = dw;
        part_dbias[(u64)blockIdx.x * c + j] = db;
    }
}

// One thread per column: adds the n_groups partial sums in order.
template <typename T>
__device__ void backward_reduce(T* dweight, T* dbias, const float* part_dweight,
                                const float* part_dbias, u32 n_groups, u32 c) {
    const u32 j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    float dw = 0.0f, db = 0.0f;
    for (u32 g = 0; g < n_groups; g++) {
        dw += part_dweight[(u64)g * c + j];
        db += part_dbias[(u64)g * c + j];
    }
    store(&dweight[j], load(&dweight[j]) + dw);
    store(&dbias[j], load(&dbias[j]) + db);
}

#define INSTANTIATE(T, S)                                                                  \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                    \
        layernorm_forward_##S(T* out, float* mean, float* rstd, const T* inp,              \
                              const T* weight, const T* bias, u32 n_rows, u32 c) {         \
        forward(out, mean, rstd, inp, weight, bias, n_rows, c);                            \
    }                                                                                      \
    extern "C" __global__ void __launch_bounds__(BLOCK) layernorm_backward_##S(            \
        T* dinp, float* part_dweight, float* part_dbias, const T* dout, const T* inp,      \
        const T* weight, const float* mean, const float* rstd, u32 n_rows, u32 c) {        \
        backward(dinp, part_dweight, part_dbias, dout, inp, weight, mean, rstd, n_rows, c); \
    }                                                                                      \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                    \
        layernorm_backward_reduce_##S(T* dweight, T* dbias, const float* part_dweight,     \
                                      const float* part_dbias, u32 n_groups, u32 c) {      \
        backward_reduce(dweight, dbias, part_dweight, part_dbias, n_groups, c);            \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
