// The bias gradient of a linear layer: dbias (n) += column sums of dout (m, n), as
// gpt2-kernels/src/cpu/matmul.rs's bias_backward. Deterministic without atomics, like
// layernorm's dweight: backward_partial writes the column sums of each group of ROWS rows,
// backward_reduce adds the groups' sums in group order.
#include "common.cuh"

#define ROWS 256  // rows per group

// Grid (ceil(n / BLOCK), ceil(m / ROWS)); part is (groups, n). Thread j of block (x, g)
// sums column x * BLOCK + j over the group's rows, in row order (coalesced reads).
template <typename T>
__device__ void backward_partial(float* part, const T* dout, u32 m, u32 n) {
    const u32 j = blockIdx.x * BLOCK + threadIdx.x;
    if (j >= n) return;
    const u32 first = blockIdx.y * ROWS, last = min(first + ROWS, m);
    float sum = 0.0f;
    for (u32 i = first; i < last; i++) sum += load(&dout[(u64)i * n + j]);
    part[(u64)blockIdx.y * n + j] = sum;
}

// One thread per column: dbias += the groups' sums, in group order.
template <typename T>
__device__ void backward_reduce(T* dbias, const float* part, u32 groups, u32 n) {
    const u32 j = blockIdx.x * BLOCK + threadIdx.x;
    if (j >= n) return;
    float sum = 0.0f;
    for (u32 g = 0; g < groups; g++) sum += part[(u64)g * n + j];
    store(&dbias[j], load(&dbias[j]) + sum);
}

#define INSTANTIATE(T, S)                                                                  \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                    \
        matmul_bias_backward_partial_##S(float* part, const T* dout, u32 m, u32 n) {       \
        backward_partial(part, dout, m, n);                                                \
    }                                                                                      \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                    \
        matmul_bias_backward_reduce_##S(T* dbias, const float* part, u32 groups, u32 n) {  \
        backward_reduce(dbias, part, groups, n);                                           \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
