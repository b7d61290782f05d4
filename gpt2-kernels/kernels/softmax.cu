// Row softmax over rows of V, as gpt2-kernels/src/cpu/softmax.rs. One block per row;
// the row max and sums are block reductions in a fixed order.
//   forward:  out = exp(x - max) * (1 / sum exp(x - max))
//   backward: dinp += out * (dout - <out, dout>)
#include "common.cuh"

template <typename T>
__device__ void forward(T* out, const T* inp, u32 v) {
    __shared__ float scratch[WARP];
    const T* x = inp + (u64)blockIdx.x * v;
    T* o = out + (u64)blockIdx.x * v;
    float m = -INFINITY;
    for (u32 j = threadIdx.x; j < v; j += blockDim.x) m = fmaxf(m, load(&x[j]));
    m = block_max(m, scratch);
    float s = 0.0f;
    for (u32 j = threadIdx.x; j < v; j += blockDim.x) s += expf(load(&x[j]) - m);
    const float inv = 1.0f / block_sum(s, scratch);
    for (u32 j = threadIdx.x; j < v; j += blockDim.x) store(&o[j], expf(load(&x[j]) - m) * inv);
}

template <typename T>
__device__ void backward(T* dinp, const T* out, const T* dout, u32 v) {
    __shared__ float scratch[WARP];
    const u64 base = (u64)blockIdx.x * v;
    float d = 0.0f;
    for (u32 j = threadIdx.x; j < v; j += blockDim.x) d += load(&out[base + j]) * load(&dout[base + j]);
    d = block_sum(d, scratch);
    for (u32 j = threadIdx.x; j < v; j += blockDim.x) {
        const u64 i = base + j;
        store(&dinp[i], load(&dinp[i]) + load(&out[i]) * (load(&dout[i]) - d));
    }
}

#define INSTANTIATE(T, S)                                                                   \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                     \
        softmax_forward_##S(T* out, const T* inp, u32 v) {                                  \
        forward(out, inp, v);                                                               \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                     \
        softmax_backward_##S(T* dinp, const T* out, const T* dout, u32 v) {                 \
        backward(dinp, out, dout, v);                                                       \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
