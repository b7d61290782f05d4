// Fused softmax + cross-entropy over the first V columns of rows of Vp >= V, as
// gpt2-kernels/src/cpu/crossentropy.rs. One block per row.
//   forward:          loss = log(sum exp(x - max)) + max - x[target]
//   forward_backward: the loss, and logits <- (softmax - onehot(target)) * dloss in
//                     place (zero in the padded columns V..Vp)
#include "common.cuh"

// The row's max and sum exp(x - max) over x[0..v), and x[target] (read before anyone
// may overwrite it: the reductions' barriers order the read before the caller's writes).
template <typename T>
__device__ void row_stats(const T* x, u32 v, u32 target, float* scratch, float* m, float* s,
                          float* x_target) {
    *x_target = load(&x[target]);
    float mx = -INFINITY;
    for (u32 j = threadIdx.x; j < v; j += blockDim.x) mx = fmaxf(mx, load(&x[j]));
    mx = block_max(mx, scratch);
    float sum = 0.0f;
    for (u32 j = threadIdx.x; j < v; j += blockDim.x) sum += expf(load(&x[j]) - mx);
    *s = block_sum(sum, scratch);
    *m = mx;
}

template <typename T>
__device__ void forward(float* losses, const T* logits, const u32* targets, u32 v, u32 vp) {
    __shared__ float scratch[WARP];
    float m, s, xt;
    row_stats(logits + (u64)blockIdx.x * vp, v, targets[blockIdx.x], scratch, &m, &s, &xt);
    if (threadIdx.x == 0) losses[blockIdx.x] = logf(s) + m - xt;
}

template <typename T>
__device__ void forward_backward(float* losses, T* logits, const u32* targets, u32 v, u32 vp,
                                 float dloss) {
    __shared__ float scratch[WARP];
    T* x = logits + (u64)blockIdx.x * vp;
    const u32 t = targets[blockIdx.x];
    float m, s, xt;
    row_stats(x, v, t, scratch, &m, &s, &xt);
    if (threadIdx.x == 0) losses[blockIdx.x] = logf(s) + m - xt;
    const float k = dloss / s;
    for (u32 j = threadIdx.x; j < vp; j += blockDim.x) {
        float d = 0.0f;
        if (j < v) {
            d = expf(load(&x[j]) - m) * k;
            if (j == t) d -= dloss;
        }
        store(&x[j], d);
    }
}

#define INSTANTIATE(T, S)                                                                   \
    extern "C" __global__ void __launch_bounds__(BLOCK) crossentropy_forward_##S(           \
        float* losses, const T* logits, const u32* targets, u32 v, u32 vp) {                \
        forward(losses, logits, targets, v, vp);                                            \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(BLOCK) crossentropy_forward_backward_##S(  \
        float* losses, T* logits, const u32* targets, u32 v, u32 vp, float dloss) {         \
        forward_backward(losses, logits, targets, v, vp, dloss);                            \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
